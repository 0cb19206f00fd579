"""The one table formatter of ssad: aligned console tables, GitHub Markdown tables and percent cells, used by every
printed or written table (``ssad.evaluate``'s and ``ssad.train``'s results, the quick-start's, ``ssad.report``'s
Markdown, ``ssad.bench``'s and the GPU check's)."""

from __future__ import annotations

from collections.abc import Sequence

Align = str  # "<" (left) or ">" (right), as in a format spec


def percent(value: float | None, digits: int = 1, missing: str = "n/a", sign: bool = False, unit: str = "") -> str:
    """A fraction as a percent cell: ``0.1234`` → ``12.3`` (``digits`` decimals, ``+`` before a gain with
    ``sign``, then ``unit``, e.g. ``%``); ``missing`` for None (an unmeasured number)."""
    if value is None:
        return missing
    return f"{100 * value:{'+' if sign else ''}.{digits}f}{unit}"


def share(value: float | None, digits: int = 1) -> str:
    """A fraction as a share with its sign: ``0.123`` → ``12.3%``; ``n/a`` for None (e.g. MFU on a CPU)."""
    return percent(value, digits, unit="%")


def percent_value(value: float | None) -> float | None:
    """A fraction in percent as a number (figures' axes, report cells); None stays None."""
    return None if value is None else 100 * value


def _per_column(value: object, n: int, name: str) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n:
        raise ValueError(f"{name}: {len(values)} values for {n} columns")
    return values


def console_table(header: Sequence[str] | None, rows: Sequence[Sequence[str]], align: Align | Sequence[Align] = ">",
                  min_widths: int | Sequence[int] = 0, gap: str | Sequence[str] = "  ", rule: bool = True,
                  indent: str = "") -> list[str]:
    """The lines of an aligned console table: each column as wide as its widest cell (at least ``min_widths``),
    cells aligned by ``align`` (one for all columns or one per column; the first column is usually ``<``),
    columns separated by ``gap`` (one string, or one per pair of neighbouring columns); ``header`` (or None) above
    a rule of dashes when ``rule``. Every line starts with ``indent``; no line ends in spaces."""
    n = len(header) if header is not None else len(rows[0]) if rows else 0
    aligns, minimum = _per_column(align, n, "align"), _per_column(min_widths, n, "min_widths")
    gaps = _per_column(gap, n - 1, "gap") if n > 1 else []
    cells = [list(map(str, row)) for row in ([header] if header is not None else []) + list(rows)]
    for row in cells:
        if len(row) != n:
            raise ValueError(f"a row of {len(row)} cells in a table of {n} columns: {row}")
    widths = [max([minimum[i], *(len(row[i]) for row in cells)]) for i in range(n)]

    def line(row: Sequence[str]) -> str:
        padded = [f"{cell:{aligns[i]}{widths[i]}}" for i, cell in enumerate(row)]
        return (indent + padded[0] + "".join(g + c for g, c in zip(gaps, padded[1:]))).rstrip() if padded else ""

    lines = [line(row) for row in cells]
    if header is not None and rule:
        lines.insert(1, line(["-" * w for w in widths]))
    return lines


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                   align: Align | Sequence[Align] = ">") -> list[str]:
    """The lines of a GitHub Markdown table: ``header``, the alignment row (``---`` left, ``---:`` right, per
    ``align``, one for all columns or one per column), then ``rows``."""
    aligns = _per_column(align, len(header), "align")
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row of {len(row)} cells in a table of {len(header)} columns: {list(row)}")

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(map(str, row)) + " |"

    return [line(header), "|" + "|".join("---:" if a == ">" else "---" for a in aligns) + "|", *map(line, rows)]
