"""HTML building blocks: page template with inline CSS, tables, embedded images."""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 1100px; margin: 0 auto; padding: 1.5em 2em 4em; line-height: 1.5; }
h1 { border-bottom: 3px solid #2c5d8a; padding-bottom: .3em; }
h2 { color: #2c5d8a; border-bottom: 1px solid #ccd; padding-bottom: .2em; margin-top: 2.2em; }
h3 { margin-bottom: .3em; }
nav ol { columns: 2; background: #f4f6f9; padding: .8em 2.5em; border-radius: 6px; }
p.note, div.explain { color: #444; font-size: .95em; }
div.explain { background: #f7f9fc; border-left: 4px solid #9db7d3; padding: .4em 1em; margin: .8em 0; }
div.warning { background: #fff4e5; border-left: 4px solid #e69500; padding: .5em 1em; margin: .8em 0; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { padding: .35em .8em; border-bottom: 1px solid #dde; text-align: right; }
th { background: #2c5d8a; color: white; font-weight: 600; }
td:first-child, th:first-child { text-align: left; }
td.text, th.text { text-align: left; }
tr:nth-child(even) td { background: #f6f8fb; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #dde; }
figcaption { font-size: .9em; color: #555; }
div.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1em; }
pre { background: #f4f6f9; padding: 1em; overflow-x: auto; font-size: .85em; border-radius: 6px; }
details { margin: .6em 0; }
summary { cursor: pointer; color: #2c5d8a; }
"""

MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


@dataclass
class Section:
    """One ``<section>`` of the report: anchor id, heading and body HTML."""

    id: str
    title: str
    body: str


def esc(text) -> str:
    """HTML-escape any value's ``str``."""
    return html.escape(str(text))


def image(data: bytes | str | os.PathLike, alt: str, caption: str | None = None) -> str:
    """A ``<figure>`` with the image embedded as a base64 data URI.

    ``data`` is PNG bytes or a path to a .png/.jpg/.svg file (type taken from the suffix).
    """
    if isinstance(data, bytes):
        mime = "image/png"
    else:
        path = Path(data)
        mime = MIME.get(path.suffix.lower())
        if mime is None:
            raise ValueError(f"{path}: cannot embed a {path.suffix!r} file; use PNG, JPEG or SVG")
        data = path.read_bytes()
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{esc(alt)}">{cap}</figure>'


def fmt(value, digits: int = 3) -> str:
    """Numbers to text: ints as ints, floats with ``digits`` decimals; NaN as an en dash."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        if float(value).is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        return f"{float(value):.{digits}f}"
    return str(value)


def table(df: pd.DataFrame, digits: int = 3, raw_html: tuple[str, ...] = ()) -> str:
    """A styled ``<table>`` of ``df`` (no index). Text columns and the first are left-aligned.

    Cells of the columns in ``raw_html`` are inserted unescaped (callers build them) and
    right-aligned;
    all other cells are formatted with :func:`fmt` and escaped.
    """
    text_cols = {c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c]) and c not in raw_html}
    head = "".join(f'<th class="{"text" if c in text_cols else "num"}">{esc(c)}</th>' for c in df.columns)
    rows = []
    for record in df.itertuples(index=False):
        cells = []
        for col, value in zip(df.columns, record):
            body = str(value) if col in raw_html else esc(fmt(value, digits))
            cells.append(f'<td class="{"text" if col in text_cols else "num"}">{body}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def page(title: str, intro: str, sections: list[Section]) -> str:
    """The whole self-contained HTML document with a table of contents."""
    toc = "".join(f'<li><a href="#{s.id}">{esc(s.title)}</a></li>' for s in sections)
    body = "".join(f'<section id="{s.id}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1>{intro}<nav><ol>{toc}</ol></nav>{body}</body></html>\n"
    )
