"""The API's error shape: ``{"error": {"type", "code", "message", "param"}}`` with its status."""

from django.http import HttpResponse

from lowrouter import jsonio
from routing.replies import Reply


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.type = type or _DEFAULT_TYPES.get(status, "api_error")
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict:
        return {
            "error": {
                "type": self.type,
                "code": self.code,
                "message": self.message,
                "param": self.param,
            }
        }

    def reply(self, extra_headers: dict[str, str] | None = None) -> Reply:
        headers = {"Content-Type": "application/json", **self.headers, **(extra_headers or {})}
        return Reply(self.status, headers, jsonio.dumps(self.body()))

    def response(self, extra_headers: dict[str, str] | None = None) -> HttpResponse:
        reply = self.reply(extra_headers)  # never a stream
        return HttpResponse(reply.body, status=reply.status, headers=reply.headers)


_DEFAULT_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_credits",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limited",
    500: "api_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}


def invalid_request(message: str, *, param: str | None = None, code: str = "invalid_request"):
    return ApiError(400, code, message, param=param)


def bad_host() -> ApiError:
    """The answer to an API request for a host this server does not serve (Django's check)."""
    return ApiError(400, "bad_host", "Invalid Host header.")


def database_unavailable() -> ApiError:
    """The answer to a request the database could not serve (unreachable, restarting, refusing
    clients, or no pooled connection free in time): the caller may retry."""
    return ApiError(
        503, "database_unavailable", "The gateway cannot reach its database; retry shortly."
    )
