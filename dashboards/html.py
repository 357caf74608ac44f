"""The report as one self-contained HTML file: PNGs embedded as base64, the same PNGs beside it.

Embedded so the file can be mailed or opened from an MLflow artifact view on its own; each figure
also links its PNG file (same folder) for full-size viewing and reuse in slides.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1250px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table.ablation { border-collapse: collapse; font-size: .92em; margin: 1em 0; }
table.ablation th, table.ablation td { border-top: 1px solid #999; border-bottom: 1px solid #999; padding: .35em .7em;
       text-align: center; }
table.ablation th { background: #f3f3f3; } table.ablation td:first-child { text-align: left; }
table.ablation tr.baseline td { background: #fbf7e6; }
table.ablation tr.reference td { color: #555; font-style: italic; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; } .note { color: #555; font-size: .92em; }
code { background: #f5f5f5; padding: 0 .25em; }
"""


@dataclass
class Figure:
    name: str  # PNG file name in the report folder
    title: str
    caption: str


@dataclass
class Section:
    title: str
    body_html: str = ""
    figures: tuple[Figure, ...] = ()


def _img(folder: Path, fig: Figure) -> str:
    data = base64.b64encode((folder / fig.name).read_bytes()).decode("ascii")
    return (f'<figure id="{html.escape(fig.name)}"><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(fig.title)} ({html.escape(fig.name)})">'
            f'<figcaption><b>{html.escape(fig.title)}.</b> {html.escape(fig.caption)} '
            f'<a href="{html.escape(fig.name)}">{html.escape(fig.name)}</a></figcaption></figure>')


def render(title: str, intro_html: str, sections: list[Section], folder: Path) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", intro_html]
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        parts.append(sec.body_html)
        parts += [_img(folder, f) for f in sec.figures if (folder / f.name).is_file()]
    parts.append("</body></html>")
    return "\n".join(parts)


def paragraph(text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<p{attr}>{html.escape(text)}</p>"
