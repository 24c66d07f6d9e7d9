import pytest

from docs_site.rendering import list_pages


@pytest.mark.django_db
def test_docs_index_lists_every_page(client):
    resp = client.get("/docs/")
    assert resp.status_code == 200
    for page in list_pages():
        assert f'href="/docs/{page.slug}"' in resp.content.decode()


@pytest.mark.django_db
def test_methodology_page_renders_from_markdown(client):
    resp = client.get("/docs/methodology")
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "<h1" in body
    assert "v0.4-2026-01" in body


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["nope", "..%2Fsettings", "UPPER"])
def test_unknown_or_unsafe_doc_slugs_are_404(client, slug):
    assert client.get(f"/docs/{slug}").status_code == 404
