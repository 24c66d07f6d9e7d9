"""The site's URLs with the public catalogue pages mounted at the root, for the page tests
(whether or not lowrouter/urls.py already includes them)."""

from django.urls import URLResolver, include, path

from lowrouter.urls import urlpatterns as site_urlpatterns

urlpatterns = list(site_urlpatterns)
if not any(isinstance(p, URLResolver) and p.namespace == "catalog" for p in urlpatterns):
    urlpatterns.append(path("", include("catalog.urls")))
