"""The documentation pages: Markdown files in docs/, rendered server-side and cached."""

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


@lru_cache(maxsize=64)
def _render(path: Path, mtime: float) -> DocPage:
    text = path.read_text(encoding="utf-8")
    html = markdown.markdown(text, extensions=["tables", "fenced_code", "toc", "sane_lists"])
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
