"""Stand-ins for course code a submission needs but does not bring.

- The course's fast layers import a compiled Cython extension, ``im2col_cython``, which is
  often not built; then they fail at call time (``NameError: col2im_6d_cython``). The
  numpy functions below have the extension's signatures and results, so the course's
  ``fast_layers.py`` (and the student's model using it) runs without compiling anything.
- A course package missing altogether (``from cs231n.fast_layers import *`` with no
  ``cs231n/`` beside ``nndl/``) gets a package whose ``fast_layers`` are the bundled
  reference's.

Nothing here is judged; the table says which stand-ins were used.
"""

from __future__ import annotations

import sys
import types

import numpy as np


def _out_size(size: int, field: int, padding: int, stride: int) -> int:
    return (size + 2 * padding - field) // stride + 1


def im2col_cython(x: np.ndarray, field_height: int, field_width: int, padding: int, stride: int) -> np.ndarray:
    """
    Columns of every receptive field, laid out as the course's extension does.

    Inputs:
    - x: Input of shape (N, C, H, W)
    - field_height, field_width, padding, stride: Geometry of the windows

    Returns:
    - cols: Array of shape (C * field_height * field_width, HH * WW * N); row
      (c, i, j), column (y, x, n) holds x_padded[n, c, stride * y + i, stride * x + j]
    """
    n, c, h, w = x.shape
    hh, ww = _out_size(h, field_height, padding, stride), _out_size(w, field_width, padding, stride)
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((c, field_height, field_width, hh, ww, n), dtype=x.dtype)
    for i in range(field_height):
        for j in range(field_width):
            window = padded[:, :, i:i + stride * hh:stride, j:j + stride * ww:stride]  # (N, C, HH, WW)
            cols[:, i, j] = window.transpose(1, 2, 3, 0)
    return cols.reshape(c * field_height * field_width, hh * ww * n)


def col2im_cython(cols: np.ndarray, N: int, C: int, H: int, W: int, field_height: int, field_width: int,
                  padding: int, stride: int) -> np.ndarray:
    """
    The adjoint of im2col_cython: sum column entries back onto the input they came from.

    Inputs:
    - cols: Array of shape (C * field_height * field_width, HH * WW * N)
    - N, C, H, W: Shape of the input the columns were taken from
    - field_height, field_width, padding, stride: Geometry of the windows

    Returns:
    - x: Array of shape (N, C, H, W)
    """
    hh, ww = _out_size(H, field_height, padding, stride), _out_size(W, field_width, padding, stride)
    blocks = cols.reshape(C, field_height, field_width, hh, ww, N)
    padded = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    for i in range(field_height):
        for j in range(field_width):
            padded[:, :, i:i + stride * hh:stride, j:j + stride * ww:stride] += blocks[:, i, j].transpose(3, 0, 1, 2)
    return padded[:, :, padding:padding + H, padding:padding + W]


def col2im_6d_cython(cols: np.ndarray, N: int, C: int, H: int, W: int, HH: int, WW: int, pad: int,
                     stride: int) -> np.ndarray:
    """
    col2im for the course's strided convolution, whose columns are 6-dimensional.

    Inputs:
    - cols: Array of shape (C, HH, WW, N, out_h, out_w)
    - N, C, H, W: Shape of the input
    - HH, WW, pad, stride: Filter size and geometry

    Returns:
    - x: Array of shape (N, C, H, W)
    """
    out_h, out_w = cols.shape[4], cols.shape[5]
    padded = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    for i in range(HH):
        for j in range(WW):
            rows, columns = slice(i, i + stride * out_h, stride), slice(j, j + stride * out_w, stride)
            padded[:, :, rows, columns] += cols[:, i, j].transpose(1, 0, 2, 3)
    return padded[:, :, pad:pad + H, pad:pad + W]


def im2col_module(name: str) -> types.ModuleType:
    """A module named `name` offering the three functions of the compiled extension."""
    module = types.ModuleType(name, "numpy stand-in for the compiled im2col_cython extension (autocnn check)")
    for function in (im2col_cython, col2im_cython, col2im_6d_cython):
        setattr(module, function.__name__, function)
    return module


def course_package(name: str) -> dict[str, types.ModuleType]:
    """
    Modules standing in for a missing course package: `name` and `name`.fast_layers.

    Returns:
    - modules: Dotted name -> module, ready to go into sys.modules
    """
    import reference.fast_layers as fast

    package = types.ModuleType(name, "stand-in course package (autocnn check)")
    package.__path__ = []
    layers = types.ModuleType(f"{name}.fast_layers", "the bundled reference's fast layers (autocnn check)")
    for attr in fast.__all__:
        setattr(layers, attr, getattr(fast, attr))
    layers.__all__ = list(fast.__all__)
    package.fast_layers = layers
    return {name: package, f"{name}.fast_layers": layers}


def install(modules: dict[str, types.ModuleType]) -> None:
    """Put stand-in modules into sys.modules (only names not already imported)."""
    for name, module in modules.items():
        sys.modules.setdefault(name, module)
