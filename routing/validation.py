"""Parse and check a chat completion request body before anything else happens."""

from dataclasses import dataclass, field

from lowrouter import jsonio
from routing.errors import ApiError, invalid_request

# Fields the gateway reads itself and never forwards upstream.
GATEWAY_FIELDS = frozenset({"route", "provider", "models"})
# The two OpenAI fields that bound a completion's length; the gateway sends one of them.
BOUND_FIELDS = frozenset({"max_tokens", "max_completion_tokens"})
MAX_TOKENS_CEILING = 10_000_000
_MAX_NESTING = 64

_TYPED_FIELDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "stream": (bool, "a boolean"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
    "n": (int, "an integer"),
    "presence_penalty": ((int, float), "a number"),
    "frequency_penalty": ((int, float), "a number"),
    "user": (str, "a string"),
    "stop": ((str, list), "a string or a list of strings"),
    "tools": (list, "a list"),
    "tool_choice": ((str, dict), "a string or an object"),
    "response_format": (dict, "an object"),
    "stream_options": (dict, "an object"),
    "route": (dict, "an object"),
    "provider": (dict, "an object"),
    "models": (list, "a list of model ids"),
    "metadata": (dict, "an object"),
    "seed": (int, "an integer"),
    "logit_bias": (dict, "an object"),
    "parallel_tool_calls": (bool, "a boolean"),
}


@dataclass
class ChatRequest:
    body: dict
    model: str
    messages: list
    stream: bool
    # The caller's output-token bound per completion: the smaller of max_tokens and
    # max_completion_tokens when both are given (None when neither is). The gateway sends one
    # bound upstream, the one its hold covers (routing/gateway.py).
    max_tokens: int | None
    client_wants_usage: bool
    # An upper bound on the prompt's tokens: a byte-level BPE token covers at least one byte of
    # text, so the UTF-8 size of the messages bounds their token count; images add a fixed bound.
    prompt_token_bound: int
    route: dict = field(default_factory=dict)
    user: str | None = None
    needs: frozenset[str] = frozenset()
    # Completions asked for ("n"): the upstream bills each one up to the bound.
    n: int = 1


def _depth_ok(value: object, depth: int = 0) -> bool:
    if depth > _MAX_NESTING:
        return False
    if isinstance(value, dict):
        return all(_depth_ok(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(_depth_ok(v, depth + 1) for v in value)
    return True


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


IMAGE_TOKEN_BOUND = 2_000


def _check_messages(messages: object) -> tuple[int, bool]:
    """Validate messages; return (image parts count, whether any content is an image)."""
    if not isinstance(messages, list) or not messages:
        raise invalid_request("'messages' must be a non-empty list of objects.", param="messages")
    images = 0
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise invalid_request(f"'messages[{i}]' must be an object.", param=f"messages[{i}]")
        role = msg.get("role")
        if not isinstance(role, str) or not role:
            raise invalid_request(
                f"'messages[{i}].role' must be a non-empty string.", param=f"messages[{i}].role"
            )
        content = msg.get("content")
        if content is None or isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise invalid_request(
                f"'messages[{i}].content' must be a string or a list of content parts.",
                param=f"messages[{i}].content",
            )
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise invalid_request(
                    f"'messages[{i}].content' parts must be objects with a 'type'.",
                    param=f"messages[{i}].content",
                )
            if part["type"] in {"image_url", "input_image", "image"}:
                images += 1
    return images, images > 0


def parse_chat_request(raw: bytes) -> ChatRequest:
    try:
        body = jsonio.loads_request(raw)
    except jsonio.UnsendableValue as exc:
        raise invalid_request(str(exc), param=exc.param) from exc
    except UnicodeDecodeError as exc:
        raise invalid_request("The request body is not valid UTF-8.", code="invalid_json") from exc
    except RecursionError as exc:
        raise invalid_request("The JSON body is nested too deeply.", code="invalid_json") from exc
    except ValueError as exc:
        raise invalid_request(f"The body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.", code="invalid_json")
    if not _depth_ok(body):
        raise invalid_request("The JSON body is nested too deeply.", code="invalid_json")

    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise invalid_request("'model' is required and must be a string.", param="model")
    if len(model) > 200 or not model.isprintable():
        raise invalid_request("'model' is not a valid model id.", param="model")
    images, _ = _check_messages(body.get("messages"))

    for name, (kinds, label) in _TYPED_FIELDS.items():
        if name in body and body[name] is not None:
            value = body[name]
            ok = isinstance(value, kinds) and not (
                kinds in (int, (int, float)) and isinstance(value, bool)
            )
            if not ok:
                raise invalid_request(f"'{name}' must be {label}.", param=name)

    max_tokens = None
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not _is_int(value) or value < 1 or value > MAX_TOKENS_CEILING:
            raise invalid_request(
                f"'{name}' must be an integer between 1 and {MAX_TOKENS_CEILING}.", param=name
            )
        max_tokens = value if max_tokens is None else min(max_tokens, value)
    if body.get("n") is not None and not 1 <= body["n"] <= 16:
        raise invalid_request("'n' must be between 1 and 16.", param="n")

    stream = bool(body.get("stream"))
    stream_options = body.get("stream_options") or {}
    user = body.get("user")
    if isinstance(user, str) and len(user) > 256:
        raise invalid_request("'user' must be at most 256 characters.", param="user")

    needs = set()
    if body.get("tools"):
        needs.add("tool_use")
    if images:
        needs.add("vision")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in {"json_schema", "json_object"}:
        needs.add("structured_output")
    if stream:
        needs.add("streaming")

    # Compact UTF-8 JSON: still at least one byte per token of what it carries.
    prompt_bytes = len(jsonio.dumps(body["messages"]))
    if body.get("tools"):
        prompt_bytes += len(jsonio.dumps(body["tools"]))
    return ChatRequest(
        body=body,
        model=model.strip(),
        messages=body["messages"],
        stream=stream,
        max_tokens=max_tokens,
        client_wants_usage=bool(stream_options.get("include_usage")),
        prompt_token_bound=prompt_bytes + images * IMAGE_TOKEN_BOUND,
        route=body.get("route") or {},
        user=user,
        needs=frozenset(needs),
        n=body.get("n") or 1,
    )


def upstream_payload(
    req: ChatRequest, upstream_model: str, *, output_bound: int, bound_field: str
) -> dict:
    """The body sent upstream: the caller's, minus gateway fields, with the upstream model name
    and exactly one output-token bound, ``output_bound`` in ``bound_field``.

    Both OpenAI bound fields are replaced: an upstream that obeys the other one would otherwise
    generate past the bound the credit hold covers. Usage is always requested on streams so a
    streamed request is billed like a plain one.
    """
    payload = {
        k: v for k, v in req.body.items() if k not in GATEWAY_FIELDS and k not in BOUND_FIELDS
    }
    payload["model"] = upstream_model
    payload[bound_field] = output_bound
    if req.stream:
        payload["stream_options"] = {
            **(req.body.get("stream_options") or {}),
            "include_usage": True,
        }
    return payload


def body_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "request_too_large",
        f"The request body is larger than the {limit} bytes allowed.",
        type="invalid_request_error",
    )
