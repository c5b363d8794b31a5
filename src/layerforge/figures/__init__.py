"""Figures: charts as PNG bytes for report pages (``charts``), picture files for run
directories (``pictures``), and the blocks a task contributes to a report page. A leaf package:
it imports nothing from layerforge but file writing, and matplotlib only when drawing."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Picture:
    """A PNG image and its alternative text."""

    alt: str
    png: bytes


@dataclass(frozen=True)
class Passage:
    """Preformatted text (a generated sample) after an introducing sentence."""

    intro: str
    text: str


@dataclass(frozen=True)
class Note:
    """A sentence in place of results (e.g. why there are none)."""

    text: str


@dataclass(frozen=True)
class Table:
    """Rows under a header (cells: text, numbers or None for none), with an optional title."""

    header: list[str]
    rows: list[list]
    title: str = ""


Block = Picture | Passage | Note | Table


def number_text(value: float) -> str:
    """A number as tables show it: four significant digits, and large ones in full with
    thousands separators (28,310,000 rather than 2.831e+07); NaN as '-'."""
    if value != value:
        return "-"
    if abs(value) >= 1e4 and abs(value) < 1e15:
        return f"{value:,.0f}"
    return f"{value:.4g}"
