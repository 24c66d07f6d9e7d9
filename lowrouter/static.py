"""Static files without slowing the API.

WhiteNoise's middleware is synchronous: placed in the middleware stack it would force every
request (the async chat endpoint included) through Django's single sync thread. This wrapper is
async, hands only static paths to WhiteNoise, and lets everything else through untouched.
"""

from collections.abc import Awaitable, Callable
from pathlib import Path

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware:
    async_capable = True
    sync_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> None:
        self.get_response = get_response
        self.prefix = settings.STATIC_URL
        # Before collectstatic has run (development, tests: the files come from the finders)
        # the folder may not exist yet; WhiteNoise would warn about it on every start.
        Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
        self.whitenoise = WhiteNoiseMiddleware(get_response=self._not_found)
        markcoroutinefunction(self)

    @staticmethod
    def _not_found(request: HttpRequest) -> None:
        return None

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(self.prefix):
            response = await sync_to_async(self.whitenoise, thread_sensitive=False)(request)
            if response is not None:
                return response
        return await self.get_response(request)
