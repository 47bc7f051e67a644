"""CIFAR-10: find it, unpack it safely, download it if needed, and load it.

Where the data comes from, in this order (the first one that is set is used):

1. the ``data_dir`` argument;
2. the environment variable ``AUTOCNN_DATA``;
3. the cache folder: ``$AUTOCNN_CACHE``, else ``$XDG_CACHE_HOME/autocnn``, else
   ``~/.cache/autocnn``. When the cache holds nothing, the official tarball is
   downloaded into it (unless ``download=False``).

A source may be the ``cifar-10-batches-py`` folder itself, a folder holding it,
the official ``cifar-10-python.tar.gz``, or a folder holding that tarball.
Sources are only read, never written (they may be read-only): a tarball is
unpacked into ``<cache>/cifar-10-batches-py``, which later calls reuse as long
as its marker file (written last) matches the tarball's path, size and time.

Safety. The batch files are Python pickles, and unpickling can run code, so
they are read with a restricted unpickler that only allows the globals a
genuine CIFAR-10 batch needs (numpy's array reconstruction, ``numpy.ndarray``,
``numpy.dtype`` and ``_codecs.encode``). Tar members are checked before anything
is written: absolute paths, ``..``, links and device files make the whole
archive refused (and ``filter='data'`` is passed as a second line of defence).
Refusals raise :class:`UnsafeDataError`; unreadable, truncated or malformed
files raise :class:`DataError` naming the file; failed downloads raise
:class:`DownloadError`. All three are ``ValueError`` subclasses.

Image layouts: ``load_CIFAR10`` returns images as (N, 32, 32, 3) like the
classic loader; ``get_CIFAR10_data`` returns (N, 3, 32, 32) as the models expect.
"""

from __future__ import annotations

import codecs
import hashlib
import http.client
import importlib
import json
import os
import pickle
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import numpy as np

from autocnn.files import atomic_write

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
TARBALL_NAME = "cifar-10-python.tar.gz"
BATCHES_DIRNAME = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{index}" for index in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"
REQUIRED_FILES = TRAIN_BATCHES + (TEST_BATCH,)
EXTRACTION_MARKER = ".autocnn-extracted.json"
CHECKSUM_FILE = "SHA256SUMS"
NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)

_CHUNK_SIZE = 1 << 20


class DataError(ValueError):
    """A data file is missing, unreadable, truncated or not what it should be."""


class UnsafeDataError(DataError):
    """A pickle or tar member was refused because loading it could run code or
    write outside the target folder."""


class DownloadError(DataError):
    """Downloading the dataset failed; no partial file was kept."""


# ---------------------------------------------------------------------- locations


def cache_dir() -> Path:
    """
    Return the folder where autocnn unpacks and downloads data.

    Returns:
    - $AUTOCNN_CACHE if set, else $XDG_CACHE_HOME/autocnn, else ~/.cache/autocnn.
    """
    if os.environ.get("AUTOCNN_CACHE"):
        return Path(os.environ["AUTOCNN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "autocnn"


def _configured_sources(data_dir: str | os.PathLike | None) -> list[tuple[str, Path | None]]:
    """(origin, path or None when not set) for every place looked at, in order."""
    env_value = os.environ.get("AUTOCNN_DATA")
    return [
        ("data_dir argument", Path(data_dir).expanduser() if data_dir is not None else None),
        ("AUTOCNN_DATA", Path(env_value).expanduser() if env_value else None),
        ("cache", cache_dir()),
    ]


def _missing_batches(folder: Path) -> list[str]:
    return [name for name in REQUIRED_FILES if not (folder / name).is_file()]


def _find_in(path: Path) -> tuple[str, Path] | None:
    """
    Look for CIFAR-10 at one source path.

    Returns:
    - ('batches folder', folder) or ('tarball', file), or None if nothing is there.
    """
    if path.is_file():
        return "tarball", path
    if not path.is_dir():
        return None
    for folder in (path, path / BATCHES_DIRNAME):
        if folder.is_dir() and not _missing_batches(folder):
            return "batches folder", folder
    if (path / TARBALL_NAME).is_file():
        return "tarball", path / TARBALL_NAME
    return None


def _nothing_found_message(origin: str, path: Path) -> str:
    message = (f"No CIFAR-10 found at {path} (from {origin}): expected a {BATCHES_DIRNAME} folder "
               f"with {', '.join(REQUIRED_FILES)}, a folder holding it, or {TARBALL_NAME}.")
    for folder in (path, path / BATCHES_DIRNAME):
        if folder.is_dir() and folder.name == BATCHES_DIRNAME:
            message += f" {folder} lacks {', '.join(_missing_batches(folder))}."
    return message


# ---------------------------------------------------------------------- checksums


def _file_digests(path: Path) -> dict[str, str]:
    """MD5 and SHA-256 of a file, read in chunks."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_SIZE), b""):
            md5.update(chunk)
            sha256.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def _sha256_listed_beside(tarball: Path) -> str | None:
    """The SHA-256 that a SHA256SUMS file next to the tarball lists for it, if any."""
    sums_file = tarball.parent / CHECKSUM_FILE
    if not sums_file.is_file():
        return None
    for line in sums_file.read_text(encoding="utf-8", errors="replace").splitlines():
        match = re.fullmatch(r"([0-9a-fA-F]{64})\s+\*?(.+)", line.strip())
        if match and match.group(2) == tarball.name:
            return match.group(1).lower()
    return None


def _verify_tarball(tarball: Path) -> tuple[bool | None, str]:
    """
    Check a tarball against the SHA-256 listed beside it or the official MD5.

    Returns a tuple of:
    - verified: True if a known checksum matches, False if the listed SHA-256
      does not match, None if there is nothing to compare with.
    - note: What was compared.
    """
    digests = _file_digests(tarball)
    listed = _sha256_listed_beside(tarball)
    if listed is not None:
        if digests["sha256"] == listed:
            return True, f"SHA-256 matches {CHECKSUM_FILE} beside it"
        return False, f"SHA-256 {digests['sha256']} differs from {listed} listed in {CHECKSUM_FILE} beside it"
    if digests["md5"] == CIFAR10_MD5:
        return True, "MD5 matches the official CIFAR-10 download"
    return None, f"MD5 {digests['md5']} is not the official one and no {CHECKSUM_FILE} lists it"


# ---------------------------------------------------------------------- safe extraction


def _refuse_unsafe_member(member: tarfile.TarInfo, tarball: Path) -> None:
    """Raise UnsafeDataError if extracting member could write outside its folder."""
    name = member.name.replace("\\", "/")
    reason = None
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        reason = "it has an absolute path"
    elif ".." in PurePosixPath(name).parts:
        reason = "its path contains '..'"
    elif member.issym() or member.islnk():
        reason = f"it is a {'symbolic' if member.issym() else 'hard'} link to '{member.linkname}'"
    elif member.ischr() or member.isblk() or member.isfifo():
        reason = "it is a device or FIFO"
    elif not (member.isfile() or member.isdir()):
        reason = "it is not a regular file or folder"
    if reason is not None:
        raise UnsafeDataError(f"Refusing to unpack {tarball}: member '{member.name}' is unsafe because "
                              f"{reason}. This is not the official CIFAR-10 archive; delete it and "
                              f"download {CIFAR10_URL} again.")


def _safe_extract(tarball: Path, destination: Path) -> None:
    """
    Unpack the CIFAR-10 files of tarball into destination/cifar-10-batches-py.

    Every member is checked before anything is written; only regular files
    directly inside cifar-10-batches-py/ are written.
    """
    extract_options = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    try:
        # Stream mode: one pass over the compressed file, members checked as they come.
        with tarfile.open(tarball, mode="r|*") as archive:
            for member in archive:
                _refuse_unsafe_member(member, tarball)
                parts = PurePosixPath(member.name.replace("\\", "/")).parts
                if member.isfile() and len(parts) == 2 and parts[0] == BATCHES_DIRNAME:
                    archive.extract(member, destination, **extract_options)
    except UnsafeDataError:
        raise
    except OSError as error:
        if error.errno is None:  # gzip reports a damaged stream as an OSError without errno
            raise DataError(f"Cannot unpack {tarball}: {error}. The file is truncated or corrupt; "
                            f"replace it with a fresh copy of {TARBALL_NAME}.") from error
        raise DataError(f"Cannot unpack {tarball} into {destination}: {error}") from error
    except (tarfile.TarError, EOFError, ValueError) as error:
        raise DataError(f"Cannot unpack {tarball}: {error}. The file is truncated or corrupt; "
                        f"replace it with a fresh copy of {TARBALL_NAME}.") from error


def _extraction_fingerprint(tarball: Path) -> dict[str, Any]:
    status = tarball.stat()
    return {"source": str(tarball.resolve()), "size": status.st_size, "mtime_ns": status.st_mtime_ns}


def _complete_extraction_marker(folder: Path) -> dict[str, Any] | None:
    """The marker of an extraction whose files are all there with their recorded sizes, else None."""
    try:
        marker = json.loads((folder / EXTRACTION_MARKER).read_text(encoding="utf-8"))
        sizes = marker["files"]
        complete = (set(REQUIRED_FILES) <= set(sizes)
                    and all((folder / name).stat().st_size == size for name, size in sizes.items()))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return marker if complete else None


def _extraction_is_current(folder: Path, fingerprint: dict[str, Any]) -> bool:
    """True if folder holds a complete extraction of the tarball fingerprint describes."""
    marker = _complete_extraction_marker(folder)
    return marker is not None and marker.get("tarball") == fingerprint


def _writable_cache(cache: Path) -> Path:
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"Cannot create the cache folder {cache}: {error}. "
                        "Set AUTOCNN_CACHE to a writable folder.") from error
    return cache


def extract_CIFAR10(tarball: str | os.PathLike, cache: str | os.PathLike | None = None) -> Path:
    """
    Unpack a CIFAR-10 tarball into <cache>/cifar-10-batches-py, or reuse an
    earlier unpacking of the same tarball.

    Inputs:
    - tarball: Path of cifar-10-python.tar.gz (it is only read).
    - cache: Folder to unpack into; default cache_dir().

    Returns:
    - The path of the unpacked cifar-10-batches-py folder.

    Raises DataError (truncated/corrupt archive, checksum listed beside it does
    not match, files missing) or UnsafeDataError (dangerous member).
    """
    tarball = Path(tarball)
    if not tarball.is_file():
        raise DataError(f"{tarball} is not a file; expected {TARBALL_NAME}")
    target = Path(cache if cache is not None else cache_dir()) / BATCHES_DIRNAME
    fingerprint = _extraction_fingerprint(tarball)
    if _extraction_is_current(target, fingerprint):
        return target

    listed = _sha256_listed_beside(tarball)
    if listed is not None and _file_digests(tarball)["sha256"] != listed:
        raise DataError(f"{tarball} does not match the SHA-256 listed in {tarball.parent / CHECKSUM_FILE}; "
                        "the file is corrupt or was replaced. Get a fresh copy.")
    staging = Path(tempfile.mkdtemp(dir=_writable_cache(target.parent), prefix=".extract-"))
    try:
        _safe_extract(tarball, staging)
        unpacked = staging / BATCHES_DIRNAME
        missing = _missing_batches(unpacked)
        if missing:
            raise DataError(f"{tarball} has no {BATCHES_DIRNAME}/{', '.join(missing)}; "
                            f"it is not the CIFAR-10 python archive.")
        marker = {"tarball": fingerprint,
                  "files": {path.name: path.stat().st_size for path in unpacked.iterdir()}}
        # The marker is written last: its presence means the unpacking finished.
        (unpacked / EXTRACTION_MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
        if target.exists():
            # Move the stale folder aside first: a folder cannot be replaced in one step.
            os.replace(target, staging / "stale")
        os.replace(unpacked, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# ---------------------------------------------------------------------- download


def _manual_download_hint(final: Path) -> str:
    return (f"Download {CIFAR10_URL} (MD5 {CIFAR10_MD5}) by hand and put it at {final}, "
            f"or set AUTOCNN_DATA to the folder that holds {TARBALL_NAME}.")


def download_CIFAR10(dest_dir: str | os.PathLike | None = None, url: str | None = None,
                     md5: str | None = None, sha256: str | None = None,
                     timeout: float = 60.0, progress: bool = True) -> Path:
    """
    Download the CIFAR-10 tarball, verify it, and only then move it into place.

    The file is streamed into a temporary file in dest_dir, checked against the
    expected size and checksums, and renamed to dest_dir/cifar-10-python.tar.gz
    with os.replace, so a failed or corrupt download never leaves a file behind.

    Inputs:
    - dest_dir: Folder to put the tarball in; default cache_dir().
    - url: Where to download from; default CIFAR10_URL (the official file).
    - md5, sha256: Expected hex digests; each given one is checked. If neither is
      given, the official MD5 (CIFAR10_MD5) is expected.
    - timeout: Seconds to wait for the server before giving up.
    - progress: If True, show a progress bar (on stderr in a terminal).

    Returns:
    - The path of the verified tarball.

    Raises DownloadError saying what failed and what to do.
    """
    url = url if url is not None else CIFAR10_URL
    if md5 is None and sha256 is None:
        md5 = CIFAR10_MD5
    dest_dir = _writable_cache(Path(dest_dir if dest_dir is not None else cache_dir()))
    final = dest_dir / TARBALL_NAME
    def download_and_verify(output: BinaryIO) -> None:
        received, digests = _stream_download(url, output, timeout, progress, final)
        expected_size = digests.pop("expected_size")
        if expected_size is not None and received != expected_size:
            raise DownloadError(f"Download from {url} is truncated: got {received} of {expected_size} bytes; "
                                f"nothing was kept. Try again, or: {_manual_download_hint(final)}")
        for algorithm, expected in (("md5", md5), ("sha256", sha256)):
            if expected is not None and digests[algorithm] != expected.lower():
                raise DownloadError(
                    f"Download from {url} is corrupt or truncated: its {algorithm.upper()} is "
                    f"{digests[algorithm]}, expected {expected.lower()} ({received} bytes received); "
                    f"nothing was kept. Try again, or: {_manual_download_hint(final)}")

    atomic_write(final, download_and_verify)
    return final


def _stream_download(url: str, output: BinaryIO, timeout: float, progress: bool,
                     final: Path) -> tuple[int, dict[str, Any]]:
    """Copy url into output; return (bytes received, digests and expected size)."""
    from tqdm.auto import tqdm

    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    received = 0

    def keep(chunk: bytes) -> None:
        md5.update(chunk)
        sha256.update(chunk)
        try:
            output.write(chunk)
        except OSError as error:
            raise DownloadError(f"Cannot write the download next to {final}: {error}") from error

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length_header = response.headers.get("Content-Length")
            expected_size = int(length_header) if length_header and length_header.isdigit() else None
            # tqdm draws a text bar in a terminal and a widget in Jupyter.
            with tqdm(total=expected_size, desc=f"Downloading {TARBALL_NAME}", unit="B", unit_scale=True,
                      unit_divisor=1024, disable=not progress, file=sys.stderr) as bar:
                while True:
                    try:
                        chunk = response.read(_CHUNK_SIZE)
                    except http.client.IncompleteRead as error:
                        # The connection closed early; the size check reports it.
                        keep(error.partial)
                        received += len(error.partial)
                        bar.update(len(error.partial))
                        break
                    if not chunk:
                        break
                    keep(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except DownloadError:
        raise
    except urllib.error.HTTPError as error:
        raise DownloadError(f"Could not download CIFAR-10 from {url}: the server answered "
                            f"{error.code} {error.reason}. {_manual_download_hint(final)}") from error
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"Could not download CIFAR-10 from {url}: {reason}. Is this machine offline? "
                            f"{_manual_download_hint(final)}") from error
    return received, {"md5": md5.hexdigest(), "sha256": sha256.hexdigest(), "expected_size": expected_size}


# ---------------------------------------------------------------------- finding the data


def locate_CIFAR10(data_dir: str | os.PathLike | None = None, download: bool = True) -> Path:
    """
    Return a complete cifar-10-batches-py folder, unpacking or downloading as needed.

    Inputs:
    - data_dir: Optional source (see the module docstring); when given, it is
      the only place looked at.
    - download: If True and the cache is the source and holds nothing, download
      the official tarball into the cache.

    Returns:
    - Path of a folder holding data_batch_1 ... data_batch_5 and test_batch.
    """
    origin, path = next((origin, path) for origin, path in _configured_sources(data_dir) if path is not None)
    found = _find_in(path)
    if found is None and origin == "cache":
        if not download:
            raise DataError(_nothing_found_message(origin, path) + " Downloading was switched off; "
                            + _manual_download_hint(path / TARBALL_NAME))
        found = "tarball", download_CIFAR10(path)
    if found is None:
        raise DataError(_nothing_found_message(origin, path))
    kind, location = found
    return location if kind == "batches folder" else extract_CIFAR10(location)


def _source_report(origin: str, path: Path | None, verify: bool) -> dict[str, Any]:
    report: dict[str, Any] = {"origin": origin, "path": str(path) if path else None, "set": path is not None,
                              "found": None, "location": None, "verified": None, "note": ""}
    if path is None:
        report["note"] = "not set"
        return report
    found = _find_in(path)
    if found is None:
        report["note"] = _nothing_found_message(origin, path)
        return report
    kind, location = found
    report.update(found=kind, location=str(location))
    if kind == "batches folder":
        if _complete_extraction_marker(location) is not None:
            report["note"] = "all batch files present, with the sizes recorded when autocnn unpacked them"
            report["verified"] = True
        else:
            report["note"] = "all batch files present (not unpacked by autocnn, so not verified)"
    else:
        unpacked = cache_dir() / BATCHES_DIRNAME
        is_current = _extraction_is_current(unpacked, _extraction_fingerprint(location))
        report["note"] = (f"unpacked in {unpacked}" if is_current else "not unpacked yet")
        if verify:
            report["verified"], checksum_note = _verify_tarball(location)
            report["note"] += "; " + checksum_note
        else:
            report["note"] += "; checksum not checked"
    return report


def describe_data_sources(data_dir: str | os.PathLike | None = None, verify: bool = False) -> list[dict[str, Any]]:
    """
    Report where CIFAR-10 is looked for and what is found there.

    Inputs:
    - data_dir: The data_dir argument a loader would get, if any.
    - verify: If True, checksum every tarball found (reads the whole file).

    Returns:
    - A list with one dictionary per place, in search order, with keys
      'origin' ('data_dir argument', 'AUTOCNN_DATA', 'cache'), 'path', 'set',
      'found' ('batches folder', 'tarball' or None), 'location', 'verified'
      (True / False / None when unknown), 'note' and 'selected' (True for the
      place a loader would use).
    """
    reports = [_source_report(origin, path, verify) for origin, path in _configured_sources(data_dir)]
    selected = next(report for report in reports if report["set"])
    for report in reports:
        report["selected"] = report is selected
    return reports


def format_data_sources(data_dir: str | os.PathLike | None = None, verify: bool = False) -> str:
    """The report of describe_data_sources as text, for the command line."""
    lines = []
    for report in describe_data_sources(data_dir, verify):
        marker = "*" if report["selected"] else " "
        found = report["found"] or "nothing"
        verified = {True: "verified", False: "CHECKSUM MISMATCH", None: "unverified"}[report["verified"]]
        if not report["set"]:
            lines.append(f"{marker} {report['origin']}: not set")
            continue
        lines.append(f"{marker} {report['origin']}: {report['path']}")
        lines.append(f"    found: {found}" + (f" at {report['location']} ({verified})" if report["found"] else ""))
        lines.append(f"    {report['note']}")
    lines.append(f"  download: {CIFAR10_URL} (MD5 {CIFAR10_MD5}) into the cache when it holds nothing")
    lines.append("(* = the source a loader uses)")
    return "\n".join(lines)


# ---------------------------------------------------------------------- reading batches


def _numpy_reconstruct() -> Any:
    for module_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(module_name)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy's array reconstruction function was not found")


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """codecs.encode as Python 3 protocol-2 pickles use it for bytes, limited to latin1."""
    if encoding not in ("latin1", "latin-1"):
        raise UnsafeDataError(f"pickled bytes use the encoding {encoding!r}; only latin1 is expected")
    return codecs.encode(text, encoding)


class _BatchUnpickler(pickle.Unpickler):
    """An Unpickler that only resolves the globals a CIFAR-10 batch contains."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        ("_codecs", "encode"): lambda: _latin1_encode,
    }

    def __init__(self, handle: BinaryIO, path: Path) -> None:
        super().__init__(handle, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        resolve = self._ALLOWED.get((module, name))
        if resolve is None:
            raise UnsafeDataError(f"Refusing to load {self.path}: it asks for '{module}.{name}', which a "
                                  "CIFAR-10 batch never needs (loading it could run code). The file is not "
                                  "a genuine CIFAR-10 batch; delete it and get a fresh copy.")
        return resolve()


def _unpickle(path: Path) -> Any:
    try:
        with open(path, "rb") as handle:
            return _BatchUnpickler(handle, path).load()
    except UnsafeDataError as error:
        if str(path) in str(error):
            raise
        raise UnsafeDataError(f"Refusing to load {path}: {error}") from None
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except Exception as error:  # Truncated pickles fail in many ways (EOFError, UnpicklingError, ...).
        raise DataError(f"Cannot read {path}: {type(error).__name__}: {error}. The file is truncated or "
                        "corrupt; replace it (delete the unpacked folder to unpack it again).") from error


def _as_str_keys(content: Any, path: Path) -> dict[str, Any]:
    if not isinstance(content, dict):
        raise DataError(f"{path} holds a {type(content).__name__}, not the dictionary of a CIFAR-10 batch")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in content.items()}


def _read_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """
    Read one batch file.

    Returns a tuple of:
    - images: uint8 array of shape (N, 3, 32, 32).
    - labels: int64 array of shape (N,) with values in 0..9.
    """
    path = Path(path)
    batch = _as_str_keys(_unpickle(path), path)
    images, labels = batch.get("data"), batch.get("labels")
    if not isinstance(images, np.ndarray) or labels is None:
        raise DataError(f"{path} lacks the 'data' array or the 'labels' of a CIFAR-10 batch")
    pixels_per_image = int(np.prod(IMAGE_SHAPE))
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != pixels_per_image:
        raise DataError(f"{path}: 'data' is {images.dtype} {images.shape}, expected uint8 (N, {pixels_per_image})")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{path}: 'labels' are not integers ({error})") from error
    if labels.shape != (images.shape[0],):
        raise DataError(f"{path}: {labels.shape} labels for {images.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(f"{path}: labels outside 0..{NUM_CLASSES - 1}")
    # Rows hold the R, G and B planes in turn, so this reshape is channel-first.
    return images.reshape((-1,) + IMAGE_SHAPE), labels


def _read_split(folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    parts = [_read_batch(folder / name) for name in names]
    return np.concatenate([images for images, _ in parts]), np.concatenate([labels for _, labels in parts])


def load_CIFAR_batch(filename: str | os.PathLike, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """
    Load a single batch of CIFAR-10 (like the classic loader).

    Inputs:
    - filename: Path of a batch file such as data_batch_1.
    - dtype: Floating point type of the returned images.

    Returns a tuple of:
    - X: Images of shape (N, 32, 32, 3), values 0..255.
    - Y: int64 labels of shape (N,).
    """
    images, labels = _read_batch(filename)
    return images.transpose(0, 2, 3, 1).astype(dtype), labels


def load_CIFAR10(root: str | os.PathLike, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray,
                                                                           np.ndarray, np.ndarray]:
    """
    Load all of CIFAR-10 (like the classic loader).

    Inputs:
    - root: A cifar-10-batches-py folder, a folder holding it, the
      cifar-10-python.tar.gz tarball or a folder holding that (a tarball is
      unpacked into the cache folder).
    - dtype: Floating point type of the returned images.

    Returns a tuple of:
    - Xtr: Training images of shape (50000, 32, 32, 3), values 0..255.
    - Ytr: int64 training labels of shape (50000,).
    - Xte: Test images of shape (10000, 32, 32, 3).
    - Yte: int64 test labels of shape (10000,).
    """
    folder = locate_CIFAR10(data_dir=root, download=False)
    train_images, train_labels = _read_split(folder, TRAIN_BATCHES)
    test_images, test_labels = _read_split(folder, (TEST_BATCH,))
    return (train_images.transpose(0, 2, 3, 1).astype(dtype), train_labels,
            test_images.transpose(0, 2, 3, 1).astype(dtype), test_labels)


def load_CIFAR10_label_names(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Return the ten class names from batches.meta (airplane, automobile, ...)."""
    folder = locate_CIFAR10(data_dir, download=False)
    meta = _as_str_keys(_unpickle(folder / META_FILE), folder / META_FILE)
    names = meta.get("label_names")
    if not isinstance(names, list):
        raise DataError(f"{folder / META_FILE} lacks 'label_names'")
    return [name.decode("latin1") if isinstance(name, bytes) else str(name) for name in names]


def get_CIFAR10_data(num_training: int = 49000, num_validation: int = 1000, num_test: int = 1000,
                     subtract_mean: bool = True, data_dir: str | os.PathLike | None = None,
                     dtype: Any = np.float64, download: bool = True) -> dict[str, np.ndarray]:
    """
    Load CIFAR-10 and prepare it for the classifiers, as in the notebook.

    Inputs:
    - num_training: Number of training images (the first ones of the training set).
    - num_validation: Number of validation images, taken from the training set
      right after the training images (images 49000-49999 by default).
    - num_test: Number of test images (the first ones of the test batch).
    - subtract_mean: If True, subtract the mean image of the training split
      from all three splits.
    - data_dir: Where to find the data; see the module docstring for the order
      in which data_dir, AUTOCNN_DATA and the cache are used.
    - dtype: Floating point type of the images (float32 halves the memory).
    - download: If True and nothing is found in the cache, download the
      official tarball into it.

    Returns a dictionary with:
    - X_train: (num_training, 3, 32, 32) images; y_train: (num_training,) int64 labels.
    - X_val: (num_validation, 3, 32, 32); y_val: (num_validation,).
    - X_test: (num_test, 3, 32, 32); y_test: (num_test,).
    """
    for name, value in (("num_training", num_training), ("num_validation", num_validation),
                        ("num_test", num_test)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    folder = locate_CIFAR10(data_dir, download=download)
    train_images, train_labels = _read_split(folder, TRAIN_BATCHES)
    test_images, test_labels = _read_split(folder, (TEST_BATCH,))
    if num_training + num_validation > len(train_images):
        raise ValueError(f"num_training + num_validation = {num_training + num_validation} exceeds the "
                         f"{len(train_images)} training images in {folder}")
    if num_test > len(test_images):
        raise ValueError(f"num_test = {num_test} exceeds the {len(test_images)} test images in {folder}")

    validation = slice(num_training, num_training + num_validation)
    X_train = train_images[:num_training].astype(dtype)
    X_val = train_images[validation].astype(dtype)
    X_test = test_images[:num_test].astype(dtype)
    if subtract_mean and num_training > 0:
        # The mean comes from the training split only, so nothing leaks from val/test.
        mean_image = X_train.mean(axis=0, dtype=np.float64).astype(dtype)
        X_train -= mean_image
        X_val -= mean_image
        X_test -= mean_image

    return {
        "X_train": X_train, "y_train": train_labels[:num_training],
        "X_val": X_val, "y_val": train_labels[validation],
        "X_test": X_test, "y_test": test_labels[:num_test],
    }


def download_into_cache() -> str:
    """Download and verify the tarball into the cache unless the cache holds CIFAR-10; says what it did."""
    cache = cache_dir()
    found = _find_in(cache)
    if found is not None:
        return f"The cache {cache} already holds CIFAR-10 ({found[0]} {found[1]}); nothing downloaded."
    return f"Downloaded and verified {download_CIFAR10(cache)}"


def selected_source_status(data_dir: str | os.PathLike | None = None, verify: bool = True) -> tuple[bool, str]:
    """
    Whether the place a loader would use holds CIFAR-10 (and, with verify, no checksum mismatches).

    Returns:
    - (usable, message): message says what to do when nothing is there, else it is empty.
    """
    # No second checksum pass is needed for folders: a mismatch is only possible for a tarball.
    selected = next(report for report in describe_data_sources(data_dir) if report["selected"])
    if selected["found"] is None:
        if selected["origin"] == "cache":
            return False, (f"No CIFAR-10 in the cache. Run 'autocnn data --download' (needs internet) "
                           f"or set AUTOCNN_DATA to a folder holding {TARBALL_NAME}.")
        return False, f"No CIFAR-10 at {selected['path']} ({selected['origin']}), the place a loader would use."
    if verify and selected["found"] == "tarball" and _verify_tarball(Path(selected["location"]))[0] is False:
        return False, ""
    return True, ""
