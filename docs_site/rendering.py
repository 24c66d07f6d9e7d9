"""The documentation pages: Markdown files in docs/, rendered server-side and cached.

``render_markdown`` is the one Markdown set-up of the site (legal pages, changelog too)."""

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import markdown
from django.conf import settings

DOCS_DIR = Path(settings.BASE_DIR) / "docs"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class DocPage:
    slug: str
    title: str
    html: str


def _title_of(text: str, slug: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return slug.replace("-", " ").capitalize()


def render_markdown(text: str, *, allow_html: bool = True) -> str:
    """Markdown to HTML the way every page of the site renders it. ``allow_html=False`` for
    text typed into the admin: raw tags then print as text instead of reaching the page."""
    md = markdown.Markdown(extensions=["tables", "fenced_code", "toc", "sane_lists"])
    if not allow_html:
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")
    return md.convert(text)


@lru_cache(maxsize=64)
def _render(path: Path, mtime: float) -> DocPage:
    text = path.read_text(encoding="utf-8")
    html = render_markdown(text)
    return DocPage(slug=path.stem, title=_title_of(text, path.stem), html=html)


def get_page(slug: str) -> DocPage | None:
    if not _SLUG.match(slug):
        return None
    path = DOCS_DIR / f"{slug}.md"
    if not path.is_file():
        return None
    return _render(path, path.stat().st_mtime)


def list_pages() -> list[DocPage]:
    pages = [get_page(p.stem) for p in sorted(DOCS_DIR.glob("*.md"))]
    return [p for p in pages if p is not None]
