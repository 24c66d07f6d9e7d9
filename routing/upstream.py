"""Talking to upstream providers over HTTP, through ``routing.http_client``.

That client replaced aiohttp here: aiohttp cost about 0.35 ms of CPU per call on the target
machine, plus a timer reschedule and several reader layers per streamed block; before it,
aiohttp had replaced httpx (3-10x cheaper, and held 64 concurrent streams, encode/httpx#3215).
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings

from catalog.models import WireFormat
from catalog.snapshot import OfferingView
from lowrouter import jsonio
from routing import anthropic_adapter, http_client

Response = http_client.Response


async def close_sessions() -> None:
    """Close every pooled upstream connection (tests, shutdown)."""
    await http_client.close_pools()


class FailureKind(StrEnum):
    """How an upstream attempt failed (recorded in the routing trace and the slot's health)."""

    HTTP_ERROR = "http_error"  # an error status; retryable when 5xx
    RATE_LIMITED = "rate_limited"  # 429
    CONNECT_ERROR = "connect_error"
    TIMEOUT = "timeout"
    MALFORMED = "malformed"  # not valid HTTP, JSON or SSE
    CUT = "cut"  # the connection broke, or a stream ended unfinished


_RETRYABLE = frozenset(
    {
        FailureKind.RATE_LIMITED,
        FailureKind.CONNECT_ERROR,
        FailureKind.TIMEOUT,
        FailureKind.MALFORMED,
    }
)


class UpstreamFailure(Exception):
    """An attempt that did not produce a usable response.

    ``retryable`` failures (5xx, connection errors, timeouts, 429) may fail over to another
    candidate; the others (4xx caused by the request) go back to the caller as they are.
    """

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        error: dict | None = None,
        usage: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.error = error
        self.usage = usage

    @property
    def retryable(self) -> bool:
        if self.kind == FailureKind.HTTP_ERROR:
            return self.status is not None and self.status >= 500
        return self.kind in _RETRYABLE


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


_MALFORMED_HTTP = "The upstream provider sent a malformed HTTP response."


async def _failure_from_response(resp: Response) -> UpstreamFailure:
    try:
        body = jsonio.loads(await resp.read())
    except (TimeoutError, ValueError, http_client.ClientError):
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    usage = body.get("usage") if isinstance(body, dict) else None
    detail = error.get("message") if isinstance(error, dict) else None
    if resp.status == 429:
        return UpstreamFailure(
            FailureKind.RATE_LIMITED,
            "The upstream provider is rate limiting requests.",
            status=429,
            retry_after=_retry_after(resp.header("Retry-After")),
            error=error if isinstance(error, dict) else None,
        )
    return UpstreamFailure(
        FailureKind.HTTP_ERROR,
        str(detail or f"The upstream provider answered HTTP {resp.status}."),
        status=resp.status,
        error=error if isinstance(error, dict) else None,
        usage=usage if isinstance(usage, dict) else None,
    )


async def post_json(offering: OfferingView, path: str, payload: dict) -> Response:
    """POST to the upstream and return the response once its headers arrived with a 2xx.

    Raises UpstreamFailure for error statuses, connection errors and a first byte that takes
    longer than LOWROUTER_UPSTREAM_FIRST_BYTE_TIMEOUT. Timeouts are read per request, so a
    settings change applies to pooled connections too.
    """
    anthropic = offering.wire_format == WireFormat.ANTHROPIC
    if anthropic:
        path = anthropic_adapter.PATH
        payload = anthropic_adapter.to_messages_request(payload)
        headers = anthropic_adapter.request_headers(offering.credential)
    else:
        headers = {"Content-Type": "application/json"}
        if offering.credential:
            headers["Authorization"] = f"Bearer {offering.credential}"
    try:
        resp = await http_client.post(
            offering.base_url + path,
            jsonio.dumps(payload),
            headers,
            connect_timeout=settings.LOWROUTER_UPSTREAM_CONNECT_TIMEOUT,
            first_byte_timeout=settings.LOWROUTER_UPSTREAM_FIRST_BYTE_TIMEOUT,
            idle_timeout=settings.LOWROUTER_UPSTREAM_IDLE_TIMEOUT,
        )
    except TimeoutError as exc:
        raise UpstreamFailure(
            FailureKind.TIMEOUT, "The upstream provider did not answer in time."
        ) from exc
    except http_client.MalformedResponse as exc:
        raise UpstreamFailure(FailureKind.MALFORMED, _MALFORMED_HTTP) from exc
    except http_client.ClientError as exc:
        raise UpstreamFailure(
            FailureKind.CONNECT_ERROR, "Could not reach the upstream provider."
        ) from exc
    if resp.status >= 400:
        try:
            failure = await _failure_from_response(resp)
        finally:
            resp.release()
        if anthropic:
            failure.usage = anthropic_adapter.usage_to_openai(failure.usage)
        raise failure
    if resp.status >= 300:
        resp.close()
        raise UpstreamFailure(
            FailureKind.MALFORMED,
            f"The upstream provider answered HTTP {resp.status} (redirects are not followed).",
            status=resp.status,
        )
    return resp


async def read_json(resp: Response) -> dict:
    try:
        body = await resp.read()
    except TimeoutError as exc:
        raise UpstreamFailure(
            FailureKind.TIMEOUT, "The upstream provider stopped responding."
        ) from exc
    except http_client.MalformedResponse as exc:
        raise UpstreamFailure(FailureKind.MALFORMED, _MALFORMED_HTTP) from exc
    except http_client.ClientError as exc:
        raise UpstreamFailure(
            FailureKind.CUT, "The upstream connection broke mid-response."
        ) from exc
    finally:
        resp.release()
    try:
        data = jsonio.loads(body)
    except ValueError as exc:
        raise UpstreamFailure(
            FailureKind.MALFORMED, "The upstream provider sent invalid JSON."
        ) from exc
    if not isinstance(data, dict):
        raise UpstreamFailure(
            FailureKind.MALFORMED, "The upstream provider sent an unexpected body."
        )
    return data


@dataclass
class SseEvent:
    data: str


async def iter_sse(resp: Response) -> AsyncIterator[SseEvent]:
    """Yield the ``data:`` payloads of a Server-Sent Events body as they arrive.

    Reads whatever bytes have arrived (usually one whole event) rather than line by line: one
    await per arriving block, not per line."""
    pending = b""
    data: list[str] = []
    try:
        while block := await resp.read_chunk():
            lines = (pending + block).split(b"\n")
            pending = lines.pop()  # an incomplete last line waits for the next block
            for raw in lines:
                line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
                if not line:
                    if data:
                        yield SseEvent("\n".join(data))
                        data = []
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
                # Comments (":") and other fields (event:, id:) carry nothing we relay.
        line = pending.rstrip(b"\r").decode("utf-8", errors="replace")
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        if data:
            yield SseEvent("\n".join(data))
    except TimeoutError as exc:
        raise UpstreamFailure(FailureKind.TIMEOUT, "The upstream stream stalled.") from exc
    except http_client.MalformedResponse as exc:
        raise UpstreamFailure(FailureKind.MALFORMED, _MALFORMED_HTTP) from exc
    except http_client.ClientError as exc:
        raise UpstreamFailure(FailureKind.CUT, "The upstream stream was cut mid-way.") from exc
