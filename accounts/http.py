"""Request types for views that only signed-in users reach."""

from django.http import HttpRequest

from accounts.models import User


class AuthenticatedHttpRequest(HttpRequest):
    """The request of a view behind ``login_required`` or the admin site: its user is a User,
    never AnonymousUser. An annotation only; Django builds the request as usual."""

    user: User


def signed_in_user(request: HttpRequest) -> User:
    """The user of a request that only signed-in users reach (where the method's signature is
    fixed by Django, e.g. ``ModelAdmin.save_model``)."""
    user = request.user
    assert isinstance(user, User), "reached without a signed-in user"
    return user
