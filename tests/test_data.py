"""CIFAR-10 loading: every source kind, safety against hostile files, downloads.

A tiny dataset in the official format (Python 2-style protocol 2 pickles with
bytes keys) is written into tmp_path; the real file is only used when the
environment variable AUTOCNN_DATA points at it.
"""

import functools
import hashlib
import http.server
import io
import os
import pickle
import socket
import tarfile
import threading

import numpy as np
import pytest

from autocnn.data import cifar10 as cifar
from autocnn.data.cifar10 import (BATCHES_DIRNAME, DataError, DownloadError, TARBALL_NAME, UnsafeDataError,
                          describe_data_sources, download_CIFAR10, format_data_sources,
                          get_CIFAR10_data, load_CIFAR10, load_CIFAR10_label_names, load_CIFAR_batch)

# Read before the autouse fixture below clears it for every test.
REAL_DATA_SOURCE = os.environ.get("AUTOCNN_DATA")
IMAGES_PER_BATCH = 20
BATCH_NAMES = [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]
LABEL_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
               b"dog", b"frog", b"horse", b"ship", b"truck"]


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    """Nothing is read from or written to the real home cache or AUTOCNN_DATA."""
    monkeypatch.setenv("AUTOCNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AUTOCNN_DATA", raising=False)


def batch_content(batch_index):
    """Deterministic images and labels of one batch (pixel values encode the batch)."""
    rng = np.random.RandomState(batch_index)
    images = rng.randint(0, 256, size=(IMAGES_PER_BATCH, 3072)).astype(np.uint8)
    labels = [int((batch_index + i) % 10) for i in range(IMAGES_PER_BATCH)]
    return images, labels


def write_dataset(parent):
    """Write cifar-10-batches-py with 5 data batches, test_batch and batches.meta."""
    folder = parent / BATCHES_DIRNAME
    folder.mkdir(parents=True)
    for index, name in enumerate(BATCH_NAMES):
        images, labels = batch_content(index)
        content = {b"batch_label": name.encode(), b"labels": labels, b"data": images,
                   b"filenames": [b"image_%d.png" % i for i in range(IMAGES_PER_BATCH)]}
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))
    meta = {b"num_cases_per_batch": IMAGES_PER_BATCH, b"label_names": LABEL_NAMES, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def write_tarball(path, folder, extra_members=()):
    """Pack folder as cifar-10-batches-py/ into path, plus (TarInfo, bytes or None) members."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        archive.add(folder, arcname=BATCHES_DIRNAME)
        for info, payload in extra_members:
            archive.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def expected_split():
    """All training images / labels and test images / labels, as the loader should give them."""
    parts = [batch_content(index) for index in range(6)]
    train_images = np.concatenate([images for images, _ in parts[:5]]).reshape(-1, 3, 32, 32)
    train_labels = np.concatenate([labels for _, labels in parts[:5]])
    test_images, test_labels = parts[5]
    return train_images, train_labels, test_images.reshape(-1, 3, 32, 32), np.array(test_labels)


def listing(root):
    return sorted(os.path.relpath(os.path.join(base, name), root)
                  for base, folders, files in os.walk(root) for name in folders + files)


def check_small_data(result, num_training=80, num_validation=20, num_test=10):
    train_images, train_labels, test_images, test_labels = expected_split()
    assert list(result) == ["X_train", "y_train", "X_val", "y_val", "X_test", "y_test"]
    assert result["X_train"].shape == (num_training, 3, 32, 32)
    assert result["X_val"].shape == (num_validation, 3, 32, 32)
    assert result["X_test"].shape == (num_test, 3, 32, 32)
    mean_image = train_images[:num_training].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(result["X_train"], train_images[:num_training] - mean_image)
    np.testing.assert_allclose(result["X_val"], train_images[num_training:num_training + num_validation] - mean_image)
    np.testing.assert_allclose(result["X_test"], test_images[:num_test] - mean_image)
    np.testing.assert_array_equal(result["y_train"], train_labels[:num_training])
    np.testing.assert_array_equal(result["y_val"], train_labels[num_training:num_training + num_validation])
    np.testing.assert_array_equal(result["y_test"], test_labels[:num_test])
    assert abs(result["X_train"].mean()) < 1e-9


SMALL = dict(num_training=80, num_validation=20, num_test=10)


# ---------------------------------------------------------------- source kinds


@pytest.mark.parametrize("kind", ["batches folder", "folder holding it", "tarball", "folder holding tarball"])
def test_every_source_kind_through_data_dir(tmp_path, kind):
    folder = write_dataset(tmp_path / "plain")
    tarball = write_tarball(tmp_path / "packed" / TARBALL_NAME, folder)
    source = {"batches folder": folder, "folder holding it": folder.parent,
              "tarball": tarball, "folder holding tarball": tarball.parent}[kind]
    check_small_data(get_CIFAR10_data(data_dir=source, **SMALL))


def test_env_var_source_and_cache_source(tmp_path, monkeypatch):
    folder = write_dataset(tmp_path / "from_env")
    monkeypatch.setenv("AUTOCNN_DATA", str(folder.parent))
    check_small_data(get_CIFAR10_data(**SMALL, download=False))

    monkeypatch.delenv("AUTOCNN_DATA")
    write_tarball(tmp_path / "cache" / TARBALL_NAME, folder)
    check_small_data(get_CIFAR10_data(**SMALL, download=False))
    assert (tmp_path / "cache" / BATCHES_DIRNAME / cifar.EXTRACTION_MARKER).is_file()


def test_data_dir_wins_over_env_var(tmp_path, monkeypatch):
    folder = write_dataset(tmp_path / "good")
    monkeypatch.setenv("AUTOCNN_DATA", str(tmp_path / "does-not-exist"))
    check_small_data(get_CIFAR10_data(data_dir=folder, **SMALL))
    with pytest.raises(DataError, match="does-not-exist.*AUTOCNN_DATA"):
        get_CIFAR10_data(**SMALL)


def test_no_mean_subtraction_float32_and_classic_layouts(tmp_path):
    folder = write_dataset(tmp_path)
    train_images, train_labels, test_images, test_labels = expected_split()
    result = get_CIFAR10_data(data_dir=folder, subtract_mean=False, dtype=np.float32, **SMALL)
    assert result["X_train"].dtype == np.float32
    np.testing.assert_array_equal(result["X_train"], train_images[:80])

    Xtr, Ytr, Xte, Yte = load_CIFAR10(folder)
    assert Xtr.shape == (100, 32, 32, 3) and Xte.shape == (20, 32, 32, 3) and Xtr.dtype == np.float64
    np.testing.assert_array_equal(Xtr, train_images.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(Ytr, train_labels)
    np.testing.assert_array_equal(Yte, test_labels)
    X, Y = load_CIFAR_batch(folder / "data_batch_2")
    np.testing.assert_array_equal(X, train_images[20:40].transpose(0, 2, 3, 1))
    assert load_CIFAR10_label_names(folder)[:2] == ["airplane", "automobile"]


def test_read_only_source_is_never_written(tmp_path):
    folder = write_dataset(tmp_path / "ro")
    tarball = write_tarball(tmp_path / "ro_tar" / TARBALL_NAME, folder)
    sources = [folder, tarball.parent]
    before = {source: listing(source) for source in sources}
    for source in sources:
        for path in [source, *source.iterdir()]:
            path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        for source in sources:
            check_small_data(get_CIFAR10_data(data_dir=source, **SMALL))
    finally:
        for source in sources:
            for path in [source, *source.iterdir()]:
                path.chmod(0o755 if path.is_dir() else 0o644)
    assert {source: listing(source) for source in sources} == before


def test_extraction_is_reused_and_redone_when_the_tarball_changes(tmp_path, monkeypatch):
    folder = write_dataset(tmp_path / "plain")
    tarball = write_tarball(tmp_path / "packed" / TARBALL_NAME, folder)
    get_CIFAR10_data(data_dir=tarball, **SMALL)

    def no_extraction(*args):
        raise AssertionError("the earlier extraction should have been reused")

    with monkeypatch.context() as patch:
        patch.setattr(cifar, "_safe_extract", no_extraction)
        check_small_data(get_CIFAR10_data(data_dir=tarball, **SMALL))

    # A different tarball at the same place is unpacked again.
    (folder / "data_batch_1").write_bytes(pickle.dumps(
        {b"data": np.zeros((20, 3072), np.uint8), b"labels": [3] * 20}, protocol=2))
    write_tarball(tarball, folder)
    os.utime(tarball, ns=(1, 1))
    assert get_CIFAR10_data(data_dir=tarball, **SMALL)["y_train"][0] == 3


def test_interrupted_extraction_is_not_trusted(tmp_path):
    folder = write_dataset(tmp_path / "plain")
    tarball = write_tarball(tmp_path / "packed" / TARBALL_NAME, folder)
    # A leftover unpacked folder with a truncated batch and no marker, as a crash might leave.
    stale = tmp_path / "cache" / BATCHES_DIRNAME
    stale.mkdir(parents=True)
    for name in BATCH_NAMES:
        (stale / name).write_bytes(b"\x80\x02}")
    check_small_data(get_CIFAR10_data(data_dir=tarball, **SMALL))
    assert (stale / cifar.EXTRACTION_MARKER).is_file()
    assert not [name for name in os.listdir(tmp_path / "cache") if name.startswith(".extract-")]


def test_damaged_extraction_is_noticed_and_redone(tmp_path):
    folder = write_dataset(tmp_path / "plain")
    tarball = write_tarball(tmp_path / "packed" / TARBALL_NAME, folder)
    get_CIFAR10_data(data_dir=tarball, **SMALL)
    unpacked = tmp_path / "cache" / BATCHES_DIRNAME
    assert describe_data_sources()[2]["verified"] is True
    batch = unpacked / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:100])
    assert describe_data_sources()[2]["verified"] is None
    check_small_data(get_CIFAR10_data(data_dir=tarball, **SMALL))
    assert describe_data_sources()[2]["verified"] is True


def test_nothing_found_says_where_to_put_the_file(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=f"No CIFAR-10 found at {empty}.*{TARBALL_NAME}"):
        get_CIFAR10_data(data_dir=empty)
    with pytest.raises(DataError, match=f"{TARBALL_NAME}.*AUTOCNN_DATA"):
        get_CIFAR10_data(download=False)


def test_too_many_images_requested(tmp_path):
    folder = write_dataset(tmp_path)
    with pytest.raises(ValueError, match="num_training \\+ num_validation = 101"):
        get_CIFAR10_data(data_dir=folder, num_training=90, num_validation=11, num_test=1)


# ---------------------------------------------------------------- hostile and broken files


class RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class CallsNumpySave:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return np.save, (str(self.marker), np.zeros(1))


@pytest.mark.parametrize("payload_class, refused_name", [(RunsAShellCommand, "system"),
                                                         (CallsNumpySave, "save")])
def test_hostile_pickle_is_refused_and_never_runs(tmp_path, payload_class, refused_name):
    folder = write_dataset(tmp_path / "data")
    marker = tmp_path / "pwned"
    hostile = {b"data": payload_class(marker), b"labels": [0] * 20}
    (folder / "data_batch_3").write_bytes(pickle.dumps(hostile, protocol=2))
    with pytest.raises(UnsafeDataError, match=f"data_batch_3.*{refused_name}"):
        get_CIFAR10_data(data_dir=folder, **SMALL)
    assert not marker.exists() and not (tmp_path / "pwned.npy").exists()


def test_truncated_batch_names_the_file(tmp_path):
    folder = write_dataset(tmp_path)
    batch = folder / "data_batch_4"
    batch.write_bytes(batch.read_bytes()[: batch.stat().st_size // 2])
    with pytest.raises(DataError, match="data_batch_4.*truncated or corrupt"):
        get_CIFAR10_data(data_dir=folder, **SMALL)


def test_malformed_batch_names_the_file(tmp_path):
    folder = write_dataset(tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 5)), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(DataError, match="test_batch.*expected uint8"):
        get_CIFAR10_data(data_dir=folder, **SMALL)
    (folder / "test_batch").write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(DataError, match="test_batch holds a list"):
        get_CIFAR10_data(data_dir=folder, **SMALL)


def tar_info(name, kind=tarfile.REGTYPE, linkname="", size=0):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, size
    return info


@pytest.mark.parametrize("case", ["dotdot", "nested dotdot", "absolute", "symlink", "hardlink", "device"])
def test_unsafe_tar_members_are_refused(tmp_path, case):
    folder = write_dataset(tmp_path / "plain")
    outside = tmp_path / "outside"
    outside.mkdir()
    payload = b"evil"
    member = {
        "dotdot": (tar_info("../evil", size=4), payload),
        "nested dotdot": (tar_info(f"{BATCHES_DIRNAME}/../../../outside/evil", size=4), payload),
        "absolute": (tar_info(str(outside / "evil"), size=4), payload),
        "symlink": (tar_info(f"{BATCHES_DIRNAME}/link", tarfile.SYMTYPE, linkname=str(outside)), None),
        "hardlink": (tar_info(f"{BATCHES_DIRNAME}/hard", tarfile.LNKTYPE, linkname="/etc/passwd"), None),
        "device": (tar_info(f"{BATCHES_DIRNAME}/null", tarfile.CHRTYPE), None),
    }[case]
    tarball = write_tarball(tmp_path / "packed" / TARBALL_NAME, folder, [member])
    before = listing(tmp_path)
    with pytest.raises(UnsafeDataError, match="Refusing to unpack .*unsafe"):
        get_CIFAR10_data(data_dir=tarball, **SMALL)
    after = listing(tmp_path)
    # Only the (empty) cache folder may have appeared; no unpacked folder, no stray file.
    assert set(after) - set(before) <= {"cache"}
    assert os.listdir(outside) == [] and not (tmp_path / "evil").exists()


def test_truncated_tarball_is_reported(tmp_path):
    folder = write_dataset(tmp_path / "plain")
    tarball = write_tarball(tmp_path / "packed" / TARBALL_NAME, folder)
    tarball.write_bytes(tarball.read_bytes()[:3000])
    with pytest.raises(DataError, match=f"Cannot unpack {tarball}.*truncated or corrupt"):
        get_CIFAR10_data(data_dir=tarball, **SMALL)
    assert not (tmp_path / "cache" / BATCHES_DIRNAME).exists()


def test_checksum_listed_beside_the_tarball_is_enforced(tmp_path):
    folder = write_dataset(tmp_path / "plain")
    tarball = write_tarball(tmp_path / "packed" / TARBALL_NAME, folder)
    (tarball.parent / "SHA256SUMS").write_text(f"{'0' * 64}  {TARBALL_NAME}\n")
    with pytest.raises(DataError, match="does not match the SHA-256"):
        get_CIFAR10_data(data_dir=tarball, **SMALL)
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    (tarball.parent / "SHA256SUMS").write_text(f"{digest}  {TARBALL_NAME}\n")
    check_small_data(get_CIFAR10_data(data_dir=tarball, **SMALL))
    reports = describe_data_sources(data_dir=tarball, verify=True)
    assert reports[0]["selected"] and reports[0]["found"] == "tarball" and reports[0]["verified"] is True


# ---------------------------------------------------------------- downloads


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/cut-short.tar.gz":
            # Promise the whole file, send half, then hang up.
            body = (self.server.root / "good.tar.gz").read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def http_server(tmp_path):
    """Serve tmp_path/served on 127.0.0.1; yields (base URL, served folder, tarball bytes)."""
    served = tmp_path / "served"
    folder = write_dataset(tmp_path / "to_serve")
    good = write_tarball(served / "good.tar.gz", folder).read_bytes()
    (served / "truncated.tar.gz").write_bytes(good[: len(good) // 2])
    corrupted = bytearray(good)
    corrupted[len(good) // 2] ^= 0xFF
    (served / "corrupted.tar.gz").write_bytes(bytes(corrupted))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietHandler, directory=str(served)))
    server.root = served
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served, good
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_download_verifies_and_places_the_file(tmp_path, http_server, capsys):
    base_url, _, good = http_server
    destination = tmp_path / "dl"
    path = download_CIFAR10(destination, url=f"{base_url}/good.tar.gz", md5=hashlib.md5(good).hexdigest(),
                            sha256=hashlib.sha256(good).hexdigest(), timeout=10)
    assert path == destination / TARBALL_NAME and path.read_bytes() == good
    assert os.listdir(destination) == [TARBALL_NAME]
    assert "100%" in capsys.readouterr().err


@pytest.mark.parametrize("name, message", [("truncated.tar.gz", "corrupt or truncated"),
                                           ("corrupted.tar.gz", "corrupt or truncated"),
                                           ("cut-short.tar.gz", "truncated")])
def test_bad_downloads_leave_nothing_behind(tmp_path, http_server, name, message):
    base_url, _, good = http_server
    destination = tmp_path / "dl"
    with pytest.raises(DownloadError, match=message) as caught:
        download_CIFAR10(destination, url=f"{base_url}/{name}", sha256=hashlib.sha256(good).hexdigest(),
                         timeout=10, progress=False)
    assert str(destination / TARBALL_NAME) in str(caught.value)  # says where to put a manual copy
    assert os.listdir(destination) == []


def test_download_checks_the_official_md5_by_default(tmp_path, http_server):
    base_url, _, _ = http_server
    with pytest.raises(DownloadError, match=f"MD5 is .*expected {cifar.CIFAR10_MD5}"):
        download_CIFAR10(tmp_path / "dl", url=f"{base_url}/good.tar.gz", timeout=10, progress=False)
    assert os.listdir(tmp_path / "dl") == []


def test_offline_download_explains_what_to_do(tmp_path, http_server):
    base_url, _, _ = http_server
    with pytest.raises(DownloadError, match=f"404.*{cifar.CIFAR10_URL}.*AUTOCNN_DATA"):
        download_CIFAR10(tmp_path / "dl", url=f"{base_url}/missing.tar.gz", timeout=10, progress=False)
    # A port that was just free: nothing listens there, so the connection is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(DownloadError, match=f"offline.*put it at {tmp_path / 'dl' / TARBALL_NAME}"):
        download_CIFAR10(tmp_path / "dl", url=f"http://127.0.0.1:{closed_port}/cifar.tar.gz",
                         timeout=10, progress=False)
    assert os.listdir(tmp_path / "dl") == []


def test_empty_cache_downloads_then_loads(tmp_path, http_server, monkeypatch):
    base_url, _, good = http_server
    monkeypatch.setattr(cifar, "CIFAR10_URL", f"{base_url}/good.tar.gz")
    monkeypatch.setattr(cifar, "CIFAR10_MD5", hashlib.md5(good).hexdigest())
    check_small_data(get_CIFAR10_data(**SMALL))
    assert (tmp_path / "cache" / TARBALL_NAME).read_bytes() == good
    reports = describe_data_sources()
    assert [report["origin"] for report in reports] == ["data_dir argument", "AUTOCNN_DATA", "cache"]
    assert reports[2]["selected"] and reports[2]["found"] == "batches folder"
    assert reports[2]["verified"] is True
    text = format_data_sources()
    assert "* cache" in text and "AUTOCNN_DATA: not set" in text


# ---------------------------------------------------------------- the real CIFAR-10


def test_real_cifar10_from_env(tmp_path, monkeypatch):
    if not REAL_DATA_SOURCE:
        pytest.skip("AUTOCNN_DATA is not set: no real CIFAR-10 to load")
    monkeypatch.setenv("AUTOCNN_DATA", REAL_DATA_SOURCE)
    result = get_CIFAR10_data(dtype=np.float32)
    assert result["X_train"].shape == (49000, 3, 32, 32)
    assert result["X_val"].shape == result["X_test"].shape == (1000, 3, 32, 32)
    for key in ("y_train", "y_val", "y_test"):
        assert result[key].min() == 0 and result[key].max() == 9
    assert abs(float(result["X_train"].mean(dtype=np.float64))) < 1e-3
    assert (tmp_path / "cache" / BATCHES_DIRNAME / cifar.EXTRACTION_MARKER).is_file()
