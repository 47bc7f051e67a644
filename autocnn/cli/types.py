"""argparse types shared by the subcommands: a bad value is an argparse error naming it."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def int_list(text: str) -> list[int]:
    """'256,128' -> [256, 128]; '' -> []."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def conv_blocks(text: str) -> list[list[int]]:
    """'32,32-64,64' -> [[32, 32], [64, 64]]: conv widths per pooling block."""
    blocks = [int_list(block) for block in text.split("-")] if text.strip() else []
    if any(not block for block in blocks):
        raise argparse.ArgumentTypeError(f"expected blocks like 32,32-64,64-128,128, got {text!r}")
    return blocks


def weight_scale(text: str) -> float | str:
    """A positive float, or 'he'."""
    if text == "he":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'he', got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'he', got {text!r}")
    return value
