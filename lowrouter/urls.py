from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include("routing.urls")),
    path("billing/", include("billing.urls")),
    path("", include("console.urls")),
    path("docs/", include("docs_site.urls")),
    path("", include("catalog.urls")),
]
