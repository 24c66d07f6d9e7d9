"""Staff who can reach money actions use the admin only with an authenticator app."""

from collections.abc import Callable

from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse


class StaffTwoFactorMiddleware:
    """Send such staff to the TOTP set-up page until they have activated it. Their sign-in
    already asks for the code once it is active (the admin signs in through allauth)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.must_set_up_totp(request):
            messages.warning(
                request,
                "Your staff account can move money: turn on two-factor authentication "
                "before using the admin.",
            )
            return HttpResponseRedirect(reverse("mfa_activate_totp"))
        return self.get_response(request)

    @staticmethod
    def must_set_up_totp(request: HttpRequest) -> bool:
        admin = reverse("admin:index")
        if not request.path.startswith(admin) or request.path == reverse("admin:logout"):
            return False
        user = request.user
        return (
            user.is_authenticated
            and user.can_reach_money_actions()
            and not is_mfa_enabled(user, [Authenticator.Type.TOTP])
        )
