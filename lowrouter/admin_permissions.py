"""One permission check for the admin's custom views and actions.

Django's admin lets any staff user into a view added through ``get_urls`` (``admin_view``
checks ``is_staff`` only) and lets anyone who may see a list run that list's actions. So every
custom view and action carries ``require_permission``: without the named permission the staff
user gets a 403 and nothing runs (superusers hold every permission). The permission is kept on
the method as ``required_permission``, so the tests can find any view or action that lacks one.
"""

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

Method = TypeVar("Method", bound=Callable[..., Any])


def require_permission(perm: str) -> Callable[[Method], Method]:
    """For a ModelAdmin method called as (self, request, ...): a custom view or an action."""

    def decorate(method: Method) -> Method:
        @functools.wraps(method)
        def checked(modeladmin: Any, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if not request.user.has_perm(perm):
                raise PermissionDenied(f"This needs the {perm} permission.")
            return method(modeladmin, request, *args, **kwargs)

        checked.required_permission = perm  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return decorate
