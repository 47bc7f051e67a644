"""``autocnn data``: where CIFAR-10 is looked for, whether it is there and verified."""

from __future__ import annotations

import argparse

from autocnn.data import TARBALL_NAME, cache_dir


def add_parser(subparsers) -> None:
    """Declare ``autocnn data``."""
    parser = subparsers.add_parser(
        "data",
        help="where CIFAR-10 is looked for, whether it is there and verified; --download",
        description="Show where CIFAR-10 is looked for (--data, $AUTOCNN_DATA, the cache), what is found at "
                    "each place and whether it is verified (a tarball against the SHA256SUMS beside it or the "
                    "official MD5). Exit status 0 when the place a loader uses holds the data and no checksum "
                    "mismatches, 1 otherwise.",
    )
    parser.add_argument("--data", dest="data_dir", metavar="DIR", help="a folder or tarball to look at first")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip checksumming the tarball (reads the whole 163 MB file)")
    parser.add_argument("--download", action="store_true",
                        help=f"download {TARBALL_NAME} into the cache ({cache_dir()}) if the cache holds no CIFAR-10")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autocnn.data import download_into_cache, format_data_sources, selected_source_status

    if args.download:
        print(download_into_cache())
    print(format_data_sources(args.data_dir, verify=args.verify))
    usable, message = selected_source_status(args.data_dir, verify=args.verify)
    if message:
        print(message)
    return 0 if usable else 1
