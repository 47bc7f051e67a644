"""CIFAR-10 for the homework: find it, unpack it safely, download it if needed, and load it.

``from autocnn.data import get_CIFAR10_data`` is the notebook's loader; the rest is
what ``autocnn data`` and the training runs use. See :mod:`autocnn.data.cifar10`.
"""

from autocnn.data.cifar10 import (BATCHES_DIRNAME, IMAGE_SHAPE, NUM_CLASSES, TARBALL_NAME, DataError,
                                  DownloadError, UnsafeDataError, cache_dir, describe_data_sources,
                                  download_CIFAR10, download_into_cache, extract_CIFAR10, format_data_sources,
                                  get_CIFAR10_data, load_CIFAR10, load_CIFAR10_label_names, load_CIFAR_batch,
                                  locate_CIFAR10, selected_source_status)

__all__ = ["BATCHES_DIRNAME", "IMAGE_SHAPE", "NUM_CLASSES", "TARBALL_NAME", "DataError", "DownloadError",
           "UnsafeDataError", "cache_dir", "describe_data_sources", "download_CIFAR10", "download_into_cache",
           "extract_CIFAR10", "format_data_sources", "get_CIFAR10_data", "load_CIFAR10",
           "load_CIFAR10_label_names", "load_CIFAR_batch", "locate_CIFAR10", "selected_source_status"]
