"""The one table formatter (ssad/utils/tables.py): column widths, alignment, gaps, rules, Markdown, percent cells."""

import pytest

from ssad.utils.tables import console_table, markdown_table, percent, share


def test_columns_are_as_wide_as_their_widest_cell_or_the_minimum() -> None:
    lines = console_table(["set", "AUROC"], [["svhn", "91.23"], ["a longer name", "5.00"]], align=["<", ">"],
                          min_widths=[0, 8])
    assert lines == ["set               AUROC",
                     "-------------  --------",
                     "svhn              91.23",
                     "a longer name      5.00"]


def test_gaps_per_column_pair_no_rule_indent_and_no_trailing_spaces() -> None:
    lines = console_table(["", "a", "b"], [["x", "1", ""]], align=["<", ">", "<"], min_widths=[3, 2, 4],
                          gap=[" ", "|"], rule=False, indent="  ")
    assert lines == ["       a|b", "  x    1|"]


def test_a_table_without_header() -> None:
    assert console_table(None, [["a", "1"], ["bb", "22"]], align=["<", ">"], gap=": ") == ["a :  1", "bb: 22"]


def test_a_row_of_another_length_is_an_error() -> None:
    with pytest.raises(ValueError, match="a row of 1 cells in a table of 2 columns"):
        console_table(["a", "b"], [["only one"]])
    with pytest.raises(ValueError, match="align: 3 values for 2 columns"):
        console_table(["a", "b"], [], align=["<", ">", ">"])


def test_markdown_table_aligns_left_and_right() -> None:
    assert markdown_table(["OOD", "A"], [["SVHN", "90.75"]], align=["<", ">"]) == [
        "| OOD | A |", "|---|---:|", "| SVHN | 90.75 |"]
    with pytest.raises(ValueError, match="a row of 1 cells"):
        markdown_table(["OOD", "A"], [["SVHN"]])


def test_percent_cells() -> None:
    assert percent(0.91234, digits=2) == "91.23" and percent(None) == "n/a" and percent(None, missing="-") == "-"
    assert percent(0.198, sign=True) == "+19.8" and percent(-0.45, sign=True) == "-45.0"
    assert share(0.123) == "12.3%" and share(0.8, 0) == "80%" and share(None) == "n/a"
