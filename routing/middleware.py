from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class ApiErrorMiddleware:
    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)
