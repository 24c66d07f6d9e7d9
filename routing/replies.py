"""What the chat endpoint answers, before anything is written: a status, headers, and either a
body or a stream.

The ASGI endpoint (``routing.asgi_endpoint``) writes a ``Reply`` straight to the server, which on
this path is most of the request's work outside the gateway itself: building a Django response
object per request measured about 5% of a worker's CPU. The Django view serves the same replies
through ``as_django()``.
"""

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase


class LastChunk(bytes):
    """The last bytes of a stream. The ASGI endpoint sends them with the end of the body in one
    write; anything else takes them as plain bytes."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # Content-Type included
    body: bytes = b""
    stream: AsyncGenerator[bytes, None] | None = None  # a stream's chunks, each written as it comes

    def as_django(self) -> HttpResponseBase:
        if self.stream is not None:
            return StreamingHttpResponse(self.stream, status=self.status, headers=self.headers)
        return HttpResponse(self.body, status=self.status, headers=self.headers)
