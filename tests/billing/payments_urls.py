"""URLconf for the money-in tests, so they do not depend on the project URLconf's state."""

from django.urls import include, path

urlpatterns = [
    path("accounts/", include("allauth.urls")),
    path("billing/", include("billing.urls")),
]
