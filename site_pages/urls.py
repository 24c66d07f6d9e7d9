from django.urls import path

from site_pages import views

app_name = "site_pages"

urlpatterns = [
    path("privacy", views.legal_page, {"slug": "privacy"}, name="privacy"),
    path("terms", views.legal_page, {"slug": "terms"}, name="terms"),
    path("impressum", views.legal_page, {"slug": "impressum"}, name="impressum"),
    path("pricing", views.pricing, name="pricing"),
    path("providers", views.providers, name="providers"),
    path("status", views.status, name="status"),
    path("changelog", views.changelog, name="changelog"),
]
