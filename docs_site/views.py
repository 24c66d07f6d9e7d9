from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from docs_site.rendering import get_page, list_pages


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "docs_site/index.html", {"pages": list_pages()})


def page(request: HttpRequest, slug: str) -> HttpResponse:
    doc = get_page(slug)
    if doc is None:
        raise Http404("No such documentation page.")
    return render(request, "docs_site/page.html", {"page": doc, "pages": list_pages()})
