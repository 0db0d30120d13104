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
_MD_TAG = re.compile(r"<(?=[A-Za-z/!?])")             # what could open raw HTML; "p < 0.001" stays as written
_MD_ENTITY = re.compile(r"&(?=#?\w+;)")               # what could spell an entity
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "|", "%")


def one_line(text: str) -> str:
    """Newlines, tabs and other control characters as one space: a cell or a label is one line."""
    return _CONTROL.sub(" ", str(text))


def html_text(text: str) -> str:
    """Text or an attribute value in HTML: ``& < > " '`` as entities."""
    return html.escape(str(text), quote=True)


def markdown_text(text: str) -> str:
    """A Markdown paragraph that keeps its own ``**bold**`` and `` `code` `` markup but no raw HTML: outside code
    spans a ``<`` that could open a tag and an ``&`` that could spell an entity are escaped (inside a code span
    everything is literal already)."""
    parts = _CODE_SPAN.split(str(text))
    return "".join(p if i % 2 else _MD_TAG.sub("&lt;", _MD_ENTITY.sub("&amp;", p)) for i, p in enumerate(parts))


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
        "−": "-", "…": r"\ldots{}", "Δ": r"$\Delta$", "×": r"$\times$", "·": r"$\cdot$"}
_TEX_SUBSCRIPT = re.compile(r"τ_([A-Za-z])")


def tex_text(text: str) -> str:
    """Text in a TeX document: one line (a blank line would end a tabular row's paragraph), specials escaped,
    ``τ_H`` as the math ``$\tau_H$``."""
    parts = _TEX_SUBSCRIPT.split(one_line(text))
    return "".join(rf"$\tau_{p}$" if i % 2 else "".join(_TEX.get(ch, ch) for ch in p) for i, p in enumerate(parts))
