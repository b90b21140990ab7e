"""A report as a list of blocks, rendered to Markdown (figures linked) and to one
self-contained HTML file (figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table; ``source`` cites the document table it fills (e.g. "seed 000 §6.1"), and such
    tables must have no empty cell."""

    frame: pd.DataFrame
    caption: str = ""
    source: str = ""


@dataclass(frozen=True)
class Figure:
    path: Path
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    @property
    def tables(self) -> list[Table]:
        return [b for b in self.blocks if isinstance(b, Table)]

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]


def cell_text(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def empty_cells(table: Table) -> list[str]:
    """'row/column' of every cell that renders empty."""
    frame = table.frame
    return [f"{frame.index[i]}/{column}" for i in range(len(frame)) for column in frame.columns
            if not cell_text(frame.iloc[i][column]).strip()]


def _caption(table: Table) -> str:
    return " — ".join(part for part in (table.caption, f"fills {table.source}" if table.source else "") if part)


def to_markdown(document: Document, *, figures_relative_to: Path) -> str:
    lines = [f"# {document.title}", ""]
    for block in document.blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            lines += [block.text, ""]
        elif isinstance(block, Bullets):
            lines += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            frame = block.frame
            header = [str(c) for c in frame.columns]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join("---" for _ in header) + "|")
            for _, row in frame.iterrows():
                lines.append("| " + " | ".join(cell_text(v).replace("|", "\\|") for v in row) + " |")
            lines += ([f"*{_caption(block)}*"] if _caption(block) else []) + [""]
        elif isinstance(block, Figure):
            relative = block.path.relative_to(figures_relative_to)
            lines += [f"![{block.caption}]({relative.as_posix()})", "", f"*{block.caption}*", ""]
    return "\n".join(lines)


STYLE = """
body { font-family: -apple-system, 'Segoe UI', Roboto, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #1f2328; line-height: 1.45; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 4px 9px; text-align: right; }
th { background: #f6f8fa; }
td:first-child, th:first-child { text-align: left; }
caption { caption-side: bottom; font-size: 0.85em; color: #57606a; text-align: left; padding-top: 4px; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eaeef2; }
figcaption { font-size: 0.85em; color: #57606a; }
"""


def to_html(document: Document) -> str:
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             f"<title>{html.escape(document.title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(document.title)}</h1>"]
    for block in document.blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in block.frame.columns)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(cell_text(v))}</td>" for v in row) + "</tr>"
                           for _, row in block.frame.iterrows())
            caption = f"<caption>{html.escape(_caption(block))}</caption>" if _caption(block) else ""
            parts.append(f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Figure):
            encoded = base64.b64encode(block.path.read_bytes()).decode()
            parts.append(f"<figure><img alt='{html.escape(block.caption, quote=True)}' "
                         f"src='data:image/png;base64,{encoded}'><figcaption>{html.escape(block.caption)}"
                         f"</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
