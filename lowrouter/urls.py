from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from accounts import views as account_views

# The admin signs in through allauth's login, so two-factor authentication applies there too.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/resend-verification/", account_views.resend_verification),
    path("register", RedirectView.as_view(url="/accounts/signup/", query_string=True)),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include("routing.urls")),
    path("billing/", include("billing.urls")),
    path("", include("console.urls")),
    path("docs/", include("docs_site.urls")),
    path("", include("site_pages.urls")),
    path("", include("catalog.urls")),
]
