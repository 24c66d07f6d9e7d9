"""Anthropic's Messages API in front of the gateway: ``POST /api/v1/anthropic/v1/messages``.

So the official Anthropic SDKs (and Claude Code) work with a LowRouter key and a LowRouter model
id. A Messages request is turned into a chat completion request, served by the same
``gateway.chat_completion`` as every other request (same key checks, routing, reservation,
settlement and record), and its answer is turned back: a ``message``, a stream of Messages
events, or an error in Messages' shape. The reverse of ``anthropic_adapter``, which speaks
Messages to an upstream.

Pure translation apart from ``create_message``; nothing here stores or logs message text.
"""

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any

from lowrouter import jsonio
from routing import anthropic_adapter
from routing.errors import ApiError, invalid_request
from routing.replies import LastChunk, Reply
from routing.validation import MAX_TOKENS_CEILING

PATH = "/api/v1/anthropic/v1/messages"
# Every path under here is Anthropic's API as an Anthropic SDK sees it.
PREFIX = "/api/v1/anthropic/"

# OpenAI finish reasons back to Messages stop reasons.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Messages' error types by status; LowRouter's own code travels alongside in ``error.code``.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
}

# Content a Messages request may carry that has no chat completion equivalent and changes
# nothing about the answer: left out. Anything else unknown is refused, not silently dropped.
_IGNORED_BLOCKS = {"thinking", "redacted_thinking"}


# --- Errors --------------------------------------------------------------------------------


def error_body(status: int, code: str, message: str) -> dict:
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, "api_error"), "code": code, "message": message},
    }


def error_reply(err: ApiError, headers: dict[str, str] | None = None) -> Reply:
    out = {**err.headers, **(headers or {}), "Content-Type": "application/json"}
    if "X-Request-ID" in out:
        out["request-id"] = out["X-Request-ID"]  # where Anthropic's SDKs read it
    return Reply(err.status, out, jsonio.dumps(error_body(err.status, err.code, err.message)))


def api_error_reply(path: str, err: ApiError, headers: dict[str, str] | None = None) -> Reply:
    """``err`` as the API answers it on ``path``: in Messages' shape under the Anthropic
    prefix (the shape an Anthropic SDK reads), in the OpenAI shape everywhere else."""
    if path.startswith(PREFIX):
        return error_reply(err, headers)
    return err.reply(headers)


# --- Request -------------------------------------------------------------------------------


def _bad(message: str, param: str) -> ApiError:
    return invalid_request(message, param=param)


def _text(content: object, param: str) -> str:
    """The text of a system prompt or tool result: a string or a list of text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise _bad(f"'{param}[{i}]' must be a text block.", f"{param}[{i}]")
            if not isinstance(block.get("text"), str):
                raise _bad(f"'{param}[{i}].text' must be a string.", f"{param}[{i}].text")
            parts.append(block["text"])
        return "\n".join(parts)
    raise _bad(f"'{param}' must be a string or a list of text blocks.", param)


def _image_part(block: dict, param: str) -> dict:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        media, data = source.get("media_type"), source.get("data")
        if isinstance(media, str) and isinstance(data, str) and data:
            return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if (
        isinstance(source, dict)
        and source.get("type") == "url"
        and isinstance(source.get("url"), str)
    ):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise _bad(f"'{param}.source' must be a base64 or url image source.", f"{param}.source")


def _message(i: int, msg: object) -> list[dict]:
    """One Messages turn as chat messages: tool results become ``tool`` messages (before the
    rest of the turn), tool uses become ``tool_calls``."""
    param = f"messages[{i}]"
    if not isinstance(msg, dict):
        raise _bad(f"'{param}' must be an object.", param)
    role = msg.get("role")
    if role not in ("user", "assistant"):
        raise _bad(f"'{param}.role' must be 'user' or 'assistant'.", f"{param}.role")
    content = msg.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise _bad(f"'{param}.content' must be a string or a list of blocks.", f"{param}.content")
    tool_messages: list[dict] = []
    parts: list[dict] = []
    tool_calls: list[dict] = []
    for j, block in enumerate(content):
        where = f"{param}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(kind, str):
            raise _bad(f"'{where}' must be an object with a 'type'.", where)
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise _bad(f"'{where}.text' must be a string.", f"{where}.text")
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append(_image_part(block, where))
        elif kind == "tool_use" and role == "assistant":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise _bad(f"'{where}' needs a string 'id' and 'name'.", where)
            arguments = jsonio.dumps(block.get("input") or {}).decode()
            tool_calls.append(anthropic_adapter.tool_call(block, arguments))
        elif kind == "tool_result" and role == "user":
            if not isinstance(block.get("tool_use_id"), str):
                raise _bad(f"'{where}.tool_use_id' must be a string.", f"{where}.tool_use_id")
            result = block.get("content", "")
            tool_messages.append(
                {
                    "role": "tool",
                    "tool_call_id": block["tool_use_id"],
                    "content": _text(result, f"{where}.content"),
                }
            )
        elif kind in _IGNORED_BLOCKS:
            continue
        else:
            raise _bad(f"'{where}': content blocks of type '{kind}' are not supported.", where)
    out = tool_messages
    if role == "assistant":
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        if text or tool_calls:
            turn: dict[str, Any] = {"role": "assistant", "content": text or None}
            if tool_calls:
                turn["tool_calls"] = tool_calls
            out.append(turn)
    elif parts:
        only_text = all(p["type"] == "text" for p in parts)
        out.append(
            {
                "role": "user",
                "content": "".join(p["text"] for p in parts) if only_text else parts,
            }
        )
    return out


def _tools(tools: object) -> list[dict]:
    if not isinstance(tools, list):
        raise _bad("'tools' must be a list.", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise _bad(f"'tools[{i}]' must be an object with a 'name'.", f"tools[{i}]")
        if tool.get("type") not in (None, "custom"):
            raise _bad(
                f"'tools[{i}]': Anthropic server tools ('{tool['type']}') are not supported.",
                f"tools[{i}]",
            )
        function = {"name": tool["name"], "parameters": tool.get("input_schema") or {}}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: object) -> tuple[object, bool | None]:
    """(chat ``tool_choice``, ``parallel_tool_calls``) for a Messages ``tool_choice``."""
    if not isinstance(choice, dict) or not isinstance(choice.get("type"), str):
        raise _bad("'tool_choice' must be an object with a 'type'.", "tool_choice")
    parallel = False if choice.get("disable_parallel_tool_use") is True else None
    kind = choice["type"]
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise _bad("'tool_choice.type' must be auto, any, tool (with a name) or none.", "tool_choice")


def to_chat_request(body: object) -> dict:
    """A Messages request body (parsed JSON) as a chat completion request body."""
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _bad("'model' is required and must be a string.", "model")
    max_tokens = body.get("max_tokens")
    if (
        not isinstance(max_tokens, int)
        or isinstance(max_tokens, bool)
        or not 1 <= max_tokens <= MAX_TOKENS_CEILING
    ):
        raise _bad(
            f"'max_tokens' is required: an integer between 1 and {MAX_TOKENS_CEILING}.",
            "max_tokens",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list of objects.", "messages")
    chat: list[dict] = []
    if body.get("system") is not None:
        system = _text(body["system"], "system")
        if system:
            chat.append({"role": "system", "content": system})
    for i, msg in enumerate(messages):
        chat.extend(_message(i, msg))
    if not chat:
        raise _bad("'messages' has no content to send.", "messages")
    out: dict[str, Any] = {"model": model, "messages": chat, "max_tokens": max_tokens}
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise _bad(f"'{name}' must be a number.", name)
            out[name] = value
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _bad("'stop_sequences' must be a list of strings.", "stop_sequences")
        if stop:
            out["stop"] = stop
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        out["tool_choice"], parallel = _tool_choice(body["tool_choice"])
        if parallel is not None:
            out["parallel_tool_calls"] = parallel
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"][:256]
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("'stream' must be a boolean.", "stream")
    if stream:
        # Messages streams always end with the usage, so ask for it.
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


# --- Response ------------------------------------------------------------------------------


def _usage(usage: object) -> dict:
    usage = jsonio.as_object(usage)
    cached = jsonio.as_object(usage.get("prompt_tokens_details")).get("cached_tokens", 0)
    cached = cached if isinstance(cached, int) else 0
    prompt = usage.get("prompt_tokens")
    prompt = prompt if isinstance(prompt, int) else 0
    output = usage.get("completion_tokens")
    return {
        # Messages counts cache reads apart from the other input tokens.
        "input_tokens": max(0, prompt - cached),
        "output_tokens": output if isinstance(output, int) else 0,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def to_message(completion: dict) -> dict:
    """A ``chat.completion`` as a Messages ``message`` (first choice; Messages has one)."""
    choices = completion.get("choices") or [{}]
    choice = jsonio.as_object(choices[0])
    message = jsonio.as_object(choice.get("message"))
    content: list[dict] = []
    if isinstance(message.get("content"), str) and message["content"]:
        content.append({"type": "text", "text": message["content"]})
    content += anthropic_adapter.tool_use_blocks(message.get("tool_calls"))
    lowrouter = completion.get("lowrouter") or {}
    finish = choice.get("finish_reason")
    out = {
        "id": "msg_" + str(lowrouter.get("generation_id") or completion.get("id") or ""),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model"),
        "content": content,
        "stop_reason": STOP_REASONS.get(finish, "end_turn")
        if isinstance(finish, str)
        else "end_turn",
        "stop_sequence": None,
        "usage": _usage(completion.get("usage")),
    }
    if lowrouter:
        out["lowrouter"] = lowrouter
    return out


def _event(kind: str, data: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + jsonio.dumps(data) + b"\n\n"


class StreamTranslator:
    """``chat.completion.chunk`` events in, Messages stream events out, one call per chunk."""

    def __init__(self, model: str, message_id: str) -> None:
        self.model = model
        self.message_id = message_id
        self.started = False
        self.block: int | None = None  # index of the open content block
        self.block_kind = ""
        self.blocks = 0
        self.tool_blocks: dict[int, int] = {}  # chat tool call index -> block index
        self.stop_reason = "end_turn"
        self.usage = _usage(None)
        self.lowrouter: dict | None = None

    def _start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        message: dict[str, object] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # Known only at the end: the final counts come with message_delta.
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [_event("message_start", {"type": "message_start", "message": message})]

    def _close_block(self) -> list[bytes]:
        if self.block is None:
            return []
        index, self.block = self.block, None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _open_block(self, kind: str, block: dict) -> list[bytes]:
        out = self._close_block()
        self.block, self.block_kind = self.blocks, kind
        self.blocks += 1
        start = {"type": "content_block_start", "index": self.block, "content_block": block}
        return [*out, _event("content_block_start", start)]

    def _delta(self, index: int, delta: dict) -> bytes:
        return _event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )

    def chunk(self, chunk: dict) -> list[bytes]:
        out = self._start()
        if isinstance(chunk.get("usage"), dict):
            self.usage = _usage(chunk["usage"])
        if isinstance(chunk.get("lowrouter"), dict):
            self.lowrouter = chunk["lowrouter"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = jsonio.as_object(choice.get("delta"))
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self.block is None or self.block_kind != "text":
                    out += self._open_block("text", {"type": "text", "text": ""})
                assert self.block is not None  # a text block is open now
                out.append(self._delta(self.block, {"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or []:
                out += self._tool_call(call)
            if choice.get("finish_reason"):
                self.stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return out

    def _tool_call(self, call: object) -> list[bytes]:
        if not isinstance(call, dict):
            return []
        out: list[bytes] = []
        index = call.get("index", 0)
        function = jsonio.as_object(call.get("function"))
        if index not in self.tool_blocks:
            block = {
                "type": "tool_use",
                "id": str(call.get("id") or ""),
                "name": str(function.get("name") or ""),
                "input": {},
            }
            out += self._open_block("tool_use", block)
            assert self.block is not None  # the tool_use block just opened
            self.tool_blocks[index] = self.block
        arguments = function.get("arguments")
        if (
            isinstance(arguments, str)
            and arguments
            and self.block is not None
            and self.tool_blocks[index] == self.block
        ):
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out.append(self._delta(self.block, delta))
        return out

    def end(self) -> list[bytes]:
        out = [*self._start(), *self._close_block()]
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
            "usage": self.usage,
        }
        if self.lowrouter:
            delta["lowrouter"] = self.lowrouter
        out.append(_event("message_delta", delta))
        out.append(_event("message_stop", {"type": "message_stop"}))
        return out

    def error(self, error: object) -> list[bytes]:
        err = error if isinstance(error, dict) else {}
        body = error_body(502, str(err.get("code") or "upstream_error"), str(err.get("message")))
        return [*self._start(), _event("error", body)]


async def translate_stream(
    chunks: AsyncGenerator[bytes, None], translator: StreamTranslator
) -> AsyncGenerator[bytes, None]:
    """The gateway's SSE stream as Messages events, one write per write of the gateway (the
    chunk cadence is kept). Closing this closes the gateway's stream, which settles."""
    async with aclosing(chunks) as source:
        async for chunk in source:
            out: list[bytes] = []
            done = False
            for event in bytes(chunk).split(b"\n\n"):
                if not event.startswith(b"data: "):
                    continue
                data = event[6:]
                if data == b"[DONE]":
                    out += translator.end()
                    done = True
                    continue
                try:
                    parsed = jsonio.loads(data)
                except ValueError:
                    continue
                if not isinstance(parsed, dict):
                    continue
                if "error" in parsed:
                    out += translator.error(parsed["error"])
                    done = True
                else:
                    out += translator.chunk(parsed)
            if out:
                joined = b"".join(out)
                yield LastChunk(joined) if done or type(chunk) is LastChunk else joined


# --- The endpoint's work -------------------------------------------------------------------


def authorization_from(authorization: str | None, api_key: str | None) -> str | None:
    """Anthropic's SDKs send the key as ``x-api-key``; a Bearer token works too."""
    if authorization:
        return authorization
    return f"Bearer {api_key}" if api_key else None


async def create_message(
    chat_completion: Callable[..., Any],
    *,
    authorization: str | None,
    raw_body: bytes,
    request_id: str,
    region_header: str | None = None,
) -> Reply:
    """Serve one Messages request through ``chat_completion`` (``gateway.chat_completion``)."""
    headers = {"X-Request-ID": request_id}
    try:
        body = jsonio.loads_request(raw_body)
        chat = to_chat_request(body)
    except jsonio.UnsendableValue as exc:
        return error_reply(invalid_request(str(exc), param=exc.param), headers)
    except UnicodeDecodeError:
        return error_reply(invalid_request("The request body is not valid UTF-8."), headers)
    except RecursionError:
        return error_reply(invalid_request("The JSON body is nested too deeply."), headers)
    except ValueError as exc:
        return error_reply(invalid_request(f"The body is not valid JSON: {exc}"), headers)
    except ApiError as refused:
        return error_reply(refused, headers)
    reply = await chat_completion(
        authorization=authorization,
        raw_body=jsonio.dumps(chat),
        request_id=request_id,
        region_header=region_header,
    )
    out_headers = {**reply.headers, "request-id": request_id}
    if reply.stream is not None:
        out_headers["Content-Type"] = "text/event-stream"
        message_id = "msg_" + reply.headers.get("X-LowRouter-Generation-ID", request_id)
        translator = StreamTranslator(chat["model"], message_id)
        return Reply(reply.status, out_headers, stream=translate_stream(reply.stream, translator))
    answer = jsonio.loads(reply.body) if reply.body else {}
    if reply.status >= 400:
        err = answer.get("error") if isinstance(answer, dict) else None
        err = err if isinstance(err, dict) else {}
        body = error_body(reply.status, str(err.get("code") or ""), str(err.get("message") or ""))
    else:
        assert isinstance(answer, dict)  # a successful reply's body is a JSON object
        body = to_message(answer)
    return Reply(reply.status, out_headers, jsonio.dumps(body))
