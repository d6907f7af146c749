"""report.html: report.md as one self-contained page, its figures embedded (issue 20 item 5).

MLflow's artifact viewer shows a Markdown file as text, so report.md's figures appear there as
`![...](scaling.png)` lines; it shows an HTML file as a page. This page references no other file:
every figure the report names is embedded as a data URI, and links to the report's other files
(the .md and .tex tables, which sit beside it) become plain names. So it opens the same from
MLflow, an e-mail or a copy of the file alone.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from dataworth.files import write_text_atomic

REPORT_HTML = "report.html"
_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f4f4f4; }
img { max-width: 100%; }
code { background: #f4f4f4; padding: 0 0.2rem; }
"""
_MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml",
                ".gif": "image/gif"}
_SCHEME = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#)", re.IGNORECASE)  # http:, data:, mailto:, #anchor


def markdown_to_html(text: str, folder: Path, title: str = "report") -> str:
    """The page for Markdown `text` whose relative image and link targets are files in `folder`."""
    from markdown_it import MarkdownIt

    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = renderer.parse(text)
    for token in tokens:
        for child in token.children or ():
            if child.type == "image":
                child.attrSet("src", _embedded(folder, child.attrGet("src") or ""))
            elif child.type == "link_open" and not _SCHEME.match(child.attrGet("href") or ""):
                child.attrs.pop("href", None)  # a file beside the report: its name stays, as text
    body = renderer.renderer.render(tokens, renderer.options, {})
    body = body.replace("<a>", "<span>").replace("</a>", "</span>")  # the links left without a target
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n")


def _embedded(folder: Path, src: str) -> str:
    if _SCHEME.match(src):
        return src
    path = folder / src
    media = _MEDIA_TYPES.get(path.suffix.lower())
    if media is None or not path.is_file() or folder.resolve() not in path.resolve().parents:
        raise ValueError(f"report.md names the figure {src!r}, which is not an image file in {folder}")
    return f"data:{media};base64,{base64.b64encode(path.read_bytes()).decode()}"


def write_report_html(folder: Path, markdown_text: str, title: str = "report") -> str:
    """Write folder/report.html from the report's Markdown; returns its name."""
    write_text_atomic(folder / REPORT_HTML, markdown_to_html(markdown_text, folder, title))
    return REPORT_HTML
