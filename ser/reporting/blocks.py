"""A document as a list of blocks (headings, paragraphs, figures, tables) and its two renderings, Markdown and one
self-contained HTML page: the report and the leaderboard say what they say once and render it alike."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

from ser.reporting.escape import html_text, markdown_cell, markdown_text
from ser.reporting.paper_tables import Table, numeric_columns


@dataclass(frozen=True)
class Heading:
    """A title (level 1) or a section heading (level 2, listed in the table of contents)."""

    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    """Prose with **bold** and `code` spans."""

    text: str


class Provenance(Paragraph):
    """The one-line record of what produced the numbers, set apart under the title."""


@dataclass(frozen=True)
class Figure:
    """A saved figure (its PNG) and its caption."""

    png: Path
    caption: str


@dataclass(frozen=True)
class TableBlock:
    """A table, also written to ``tables/`` as CSV and TeX."""

    table: Table


Block = Heading | Paragraph | Figure | TableBlock
"""What a report says, in order; rendered to Markdown and HTML alike."""


def to_markdown(blocks: list[Block], base: Path) -> str:
    """The blocks as Markdown, figures linked relative to ``base`` (the directory the .md file is written to)."""
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {markdown_cell(b.text)}\n")
        elif isinstance(b, Provenance):
            out.append(f"*{markdown_text(b.text)}*\n")
        elif isinstance(b, Paragraph):
            out.append(f"{markdown_text(b.text)}\n")
        elif isinstance(b, Figure):
            caption = markdown_cell(b.caption)
            out.append(f"![{caption.replace('[', '(').replace(']', ')')}]({b.png.relative_to(base).as_posix()})"
                       f"\n\n*{caption}*\n")
        else:
            t = b.table
            out.append("| " + " | ".join(map(markdown_cell, t.head)) + " |\n|" + "---|" * len(t.head) + "\n"
                       + "".join("| " + " | ".join(map(markdown_cell, r)) + " |\n" for r in t.rows))
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escape, then render **bold** and `code` spans."""
    text = html_text(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


CSS = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222;"
       "line-height:1.45}h2{scroll-margin-top:1em}.scroll{overflow-x:auto;max-width:100%}"
       "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ddd;padding:3px 8px;"
       "text-align:right;vertical-align:top}th{background:#f4f4f4}td.t,th.t{text-align:left}td.t{min-width:9em}"
       "td:first-child{white-space:nowrap}img{max-width:100%;height:auto}"
       "figcaption{font-size:13px;color:#555;margin-bottom:1.5em}code{background:#f4f4f4;overflow-wrap:anywhere}"
       "nav.toc{font-size:14px;background:#f8f8f8;border:1px solid #e4e4e4;padding:.4em 1em;margin:1em 0}"
       "nav.toc ol{margin:.3em 0;padding-left:1.4em;columns:2}"
       ".provenance{font-size:12px;color:#555;border-left:3px solid #2a9d8f;padding:.2em .8em;margin:1em 0}")


def anchor(heading: str) -> str:
    """A heading's id: lower-case words joined by hyphens (``Per fold`` → ``per-fold``)."""
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-") or "section"


def _table_html(t: Table) -> str:
    """A table that scrolls sideways on a narrow screen; text columns left-aligned, figures right-aligned."""
    text = [j == 0 or numeric_columns(h, [r[j] for r in t.rows]) is None for j, h in enumerate(t.head)]
    cls = [" class='t'" if is_text else "" for is_text in text]
    return ("<div class='scroll'><table><tr>" + "".join(f"<th{c}>{html_text(h)}</th>" for c, h in zip(cls, t.head))
            + "</tr>" + "".join("<tr>" + "".join(f"<td{c}>{html_text(v)}</td>" for c, v in zip(cls, r)) + "</tr>"
                                for r in t.rows) + "</table></div>")


def to_html(blocks: list[Block], title: str) -> str:
    """A self-contained page: a table of contents after the title, anchored sections, the provenance box."""
    sections = [b.text for b in blocks if isinstance(b, Heading) and b.level == 2]
    toc = ("<nav class='toc'><strong>Contents</strong><ol>"
           + "".join(f"<li><a href='#{anchor(h)}'>{html_text(h)}</a></li>" for h in sections) + "</ol></nav>")
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
           f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html_text(title)}</title>"
           f"<style>{CSS}</style></head><body>"]
    for b in blocks:
        if isinstance(b, Heading) and b.level == 1:
            out.append(f"<h1>{_inline(b.text)}</h1>")
        elif isinstance(b, Heading):
            if toc:
                out.append(toc)
                toc = ""
            out.append(f"<h2 id='{anchor(b.text)}'>{_inline(b.text)}</h2>")
        elif isinstance(b, Provenance):
            out.append(f"<p class='provenance'>{_inline(b.text)}</p>")
        elif isinstance(b, Paragraph):
            out.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Figure):
            data = base64.b64encode(b.png.read_bytes()).decode()
            out.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html_text(b.caption)}'>"
                       f"<figcaption>{_inline(b.caption)}</figcaption></figure>")
        else:
            out.append(_table_html(b.table))
    out.append("</body></html>")
    return "\n".join(out)


def tables_with_captions(blocks: list[Block]) -> list[tuple[Table, str]]:
    """Each table with a caption from its section: the heading, and the paragraph that introduces it."""
    out, heading, text = [], "", ""
    for b in blocks:
        if isinstance(b, Heading):
            heading, text = b.text, ""
        elif isinstance(b, Paragraph):
            text = b.text
        elif isinstance(b, TableBlock):
            first = re.split(r"(?<=[.;:])\s", text.replace("**", "").replace("`", ""), maxsplit=1)[0]
            out.append((b.table, f"{heading}. {first}".strip(" .") + "." if first else f"{heading}."))
    return out
