"""The one escaping layer: every string that came from data (ids, folds, labels, conditions) passes through
here before it reaches HTML, Markdown, CSV, or TeX, so a hostile name stays text.
(Figures never parse mathtext at all: ``figures.STYLE`` turns it off, so ``$`` in a fold name is a dollar.)

Each writer calls the function for its format; none escapes on its own.
"""

from __future__ import annotations

import html
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_CODE_SPAN = re.compile(r"(`[^`\n]*`)")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "|", "%")


def one_line(text: str) -> str:
    """Newlines, tabs and other control characters as one space: a cell or a label is one line."""
    return _CONTROL.sub(" ", str(text))


def html_text(text: str) -> str:
    """Text or an attribute value in HTML: ``& < > " '`` as entities."""
    return html.escape(str(text), quote=True)


def markdown_text(text: str) -> str:
    """A Markdown paragraph that keeps its own ``**bold**`` and `` `code` `` markup but no raw HTML: ``& < >``
    outside code spans become entities (inside a code span everything is literal already)."""
    parts = _CODE_SPAN.split(str(text))
    return "".join(p if i % 2 else html.escape(p, quote=False) for i, p in enumerate(parts))


def markdown_cell(text: str) -> str:
    """One Markdown table cell: one line, no raw HTML, ``|`` escaped so it cannot add a column."""
    return markdown_text(one_line(text)).replace("\\", "\\\\").replace("|", "\\|")


def csv_cell(value: object) -> object:
    """A CSV cell that a spreadsheet will not run: text starting with ``= + - @`` (or tab, CR, ``|``, ``%``)
    gets a leading ``'``, numbers and text that reads as a number are left alone."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value.replace(",", ""))
        return value
    except ValueError:
        return "'" + value


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
        "|": r"\textbar{}", "±": r"$\pm$", "→": r"$\rightarrow$", "≥": r"$\geq$", "≤": r"$\leq$", "τ": r"$\tau$",
        "−": "-", "…": r"\ldots{}"}


def tex_text(text: str) -> str:
    """Text in a TeX document: one line (a blank line would end a tabular row's paragraph), specials escaped."""
    return "".join(_TEX.get(ch, ch) for ch in one_line(text))
