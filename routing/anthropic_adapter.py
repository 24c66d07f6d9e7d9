"""The Anthropic Messages wire format behind the OpenAI-shaped gateway.

Pure translation, no I/O: an OpenAI chat payload becomes a Messages request body, a Messages
response becomes a ``chat.completion``, and Messages SSE events become
``chat.completion.chunk`` dicts, so the gateway's relay, usage counting and settlement stay
the ones it uses for OpenAI-compatible upstreams. A provider whose catalogue ``wire_format``
is ``anthropic`` is served through this module; nothing else about it differs.
"""

import json
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from lowrouter import jsonio

PATH = "/messages"
API_VERSION = "2023-06-01"
# Messages requires max_tokens; the gateway normally passes the bound it reserved credits for.
DEFAULT_MAX_TOKENS = 4096

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
    "model_context_window_exceeded": "length",
}


def request_headers(credential: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION}
    if credential:
        headers["x-api-key"] = credential
    return headers


# --- Request -------------------------------------------------------------------------------


def _text_of(content: object) -> str:
    """The text of an OpenAI content: a string, or the text parts of a list, joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _image_block(part: dict) -> dict | None:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        return None
    if url.startswith("data:"):
        # data:<media type>;base64,<data>
        head, _, data = url.partition(",")
        media_type = head[5:].split(";")[0]
        if not data or ";base64" not in head:
            return None
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    return None


def _content_blocks(content: object) -> list[dict]:
    """OpenAI content to Messages blocks. Empty text is left out: Messages rejects empty text
    blocks. Part types Messages has no equivalent for (audio, files) are dropped."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in {"text", "input_text"} and isinstance(part.get("text"), str) and part["text"]:
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            block = _image_block(part)
            if block is not None:
                blocks.append(block)
    return blocks


def tool_use_blocks(tool_calls: object) -> list[dict]:
    """OpenAI ``tool_calls`` as Messages ``tool_use`` blocks."""
    blocks = []
    for call in tool_calls if isinstance(tool_calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except (TypeError, ValueError):
            arguments = {}
        blocks.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or ""),
                "name": str(function.get("name") or ""),
                # Messages wants an object; a model that produced other JSON gets it wrapped.
                "input": arguments if isinstance(arguments, dict) else {"value": arguments},
            }
        )
    return blocks


def _tool_result_block(message: dict) -> dict:
    content = message.get("content")
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": str(message.get("tool_call_id") or ""),
    }
    blocks = _content_blocks(content)
    if blocks:
        block["content"] = blocks
    return block


def _conversation(messages: list) -> tuple[str, list[dict]]:
    """Split OpenAI messages into the system text and alternating user/assistant turns."""
    system: list[str] = []
    turns: list[dict] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in {"system", "developer"}:
            text = _text_of(message.get("content"))
            if text:
                system.append(text)
            continue
        if role == "tool":
            role, blocks = "user", [_tool_result_block(message)]
        elif role == "assistant":
            blocks = _content_blocks(message.get("content"))
            blocks += tool_use_blocks(message.get("tool_calls"))
        elif role == "user":
            blocks = _content_blocks(message.get("content"))
        else:
            continue
        if not blocks:
            continue
        # Messages wants turns to alternate, and all the results of one assistant turn's tool
        # calls in the single user turn after it: consecutive same-role messages are merged.
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return "\n\n".join(system), turns


def _tools(tools: object) -> list[dict]:
    out = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        entry: dict[str, Any] = {
            "name": function.get("name"),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = function["description"]
        out.append(entry)
    return out


def _tool_choice(choice: object, parallel: object) -> dict | None:
    mapped: dict[str, Any] | None = None
    if choice == "auto":
        mapped = {"type": "auto"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif choice == "none":
        mapped = {"type": "none"}
    elif isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str):
            mapped = {"type": "tool", "name": name}
    if parallel is False:
        mapped = mapped or {"type": "auto"}
        if mapped["type"] != "none":
            mapped["disable_parallel_tool_use"] = True
    return mapped


def _max_tokens(payload: dict, default: int) -> int:
    limits = [
        payload[name]
        for name in ("max_tokens", "max_completion_tokens")
        if isinstance(payload.get(name), int) and not isinstance(payload[name], bool)
    ]
    return min(limits) if limits else default


def to_messages_request(payload: dict, *, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict:
    """The Messages body for an OpenAI chat payload (upstream model name already in place).

    Fields with no Messages equivalent (n, penalties, logit_bias, seed, response_format,
    stream_options, logprobs, ...) are dropped.
    """
    system, turns = _conversation(payload.get("messages") or [])
    body: dict[str, Any] = {
        "model": payload.get("model"),
        "messages": turns,
        "max_tokens": _max_tokens(payload, default_max_tokens),
    }
    if system:
        body["system"] = system
    stop = payload.get("stop")
    if isinstance(stop, str) and stop:
        body["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        body["stop_sequences"] = [s for s in stop if isinstance(s, str) and s]
    temperature = payload.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        # OpenAI allows 0-2, Messages 0-1: clamp rather than have the upstream refuse.
        body["temperature"] = min(max(temperature, 0), 1)
    for name in ("top_p", "top_k"):
        if payload.get(name) is not None:
            body[name] = payload[name]
    tools = _tools(payload.get("tools"))
    if tools:
        body["tools"] = tools
        choice = _tool_choice(payload.get("tool_choice"), payload.get("parallel_tool_calls"))
        if choice is not None:
            body["tool_choice"] = choice
    if isinstance(payload.get("user"), str) and payload["user"]:
        body["metadata"] = {"user_id": payload["user"]}
    if payload.get("stream"):
        body["stream"] = True
    return body


# --- Response -----------------------------------------------------------------------------


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_to_openai(usage: object) -> dict | None:
    """Messages usage as an OpenAI usage block. Messages counts cache reads and cache writes
    apart from ``input_tokens``; OpenAI's ``prompt_tokens`` includes them, with cache reads
    reported as ``cached_tokens`` (cache writes are billed as ordinary prompt tokens)."""
    if not isinstance(usage, dict):
        return None
    cache_read = _int(usage.get("cache_read_input_tokens"))
    prompt = (
        _int(usage.get("input_tokens"))
        + cache_read
        + _int(usage.get("cache_creation_input_tokens"))
    )
    completion = _int(usage.get("output_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read},
    }


def finish_reason(stop_reason: object) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def tool_call(block: dict, input_json: str) -> dict:
    """A Messages ``tool_use`` block as an OpenAI tool call, its input as ``input_json``."""
    return {
        "id": str(block.get("id") or ""),
        "type": "function",
        "function": {"name": str(block.get("name") or ""), "arguments": input_json},
    }


def from_messages_response(data: dict, *, model: str) -> dict:
    """A Messages response as an OpenAI ``chat.completion``. Thinking blocks are left out."""
    texts: list[str] = []
    tool_calls: list[dict] = []
    content = data.get("content")
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            tool_calls.append(tool_call(block, json.dumps(block.get("input") or {})))
    message: dict[str, Any] = {
        "role": "assistant",
        # OpenAI sends null content on a turn that only calls tools.
        "content": "".join(texts) if texts or not tool_calls else None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    completion: dict[str, Any] = {
        "id": str(data.get("id") or ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(data.get("stop_reason")),
            }
        ],
    }
    usage = usage_to_openai(data.get("usage"))
    if usage is not None:
        completion["usage"] = usage
    return completion


def error_to_openai(data: dict) -> dict:
    """A Messages error body (``{"type": "error", "error": {...}}``) in the OpenAI shape."""
    error = jsonio.as_object(data.get("error"))
    kind = str(error.get("type") or "api_error")
    return {
        "error": {
            "type": kind,
            "code": kind,
            "message": str(error.get("message") or "The upstream reported an error."),
            "param": None,
        }
    }


# --- Streaming ----------------------------------------------------------------------------


class StreamTranslator:
    """Messages SSE events to ``chat.completion.chunk`` dicts; one instance per stream.

    The chunk carrying ``finish_reason`` is sent at ``message_delta``; the usage-only chunk
    (empty ``choices``) after ``message_stop``, as OpenAI does with include_usage.
    """

    def __init__(self, *, model: str) -> None:
        self.model = model
        self.id = ""
        self.created = int(time.time())
        self.usage: dict[str, Any] = {}
        # Messages numbers every content block; OpenAI numbers tool calls only.
        self._tool_index: dict[int, int] = {}

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def _tool_delta(self, block_index: object, call: dict) -> dict:
        index = self._tool_index.get(block_index) if isinstance(block_index, int) else None
        if index is None:
            return {}
        return {"tool_calls": [{"index": index, **call}]}

    def feed(self, event: str | None, data: dict) -> list[dict]:
        kind = data.get("type") or event
        if kind == "message_start":
            message = jsonio.as_object(data.get("message"))
            self.id = str(message.get("id") or "")
            if isinstance(message.get("usage"), dict):
                self.usage.update(message["usage"])
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "content_block_delta":
            return self._block_delta(data)
        if kind == "message_delta":
            if isinstance(data.get("usage"), dict):
                # Counts here are cumulative for the message: they replace the earlier ones.
                self.usage.update(data["usage"])
            delta = jsonio.as_object(data.get("delta"))
            return [self._chunk({}, finish_reason(delta.get("stop_reason")))]
        if kind == "message_stop":
            return [
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage_to_openai(self.usage),
                }
            ]
        if kind == "error":
            return [error_to_openai(data)]
        # ping, content_block_stop and event types added later carry nothing to relay.
        return []

    def _block_start(self, data: dict) -> list[dict]:
        block = data.get("content_block")
        if not isinstance(block, dict):
            return []
        if block.get("type") == "tool_use":
            index = data.get("index")
            if not isinstance(index, int):
                return []
            self._tool_index[index] = len(self._tool_index)
            return [self._chunk(self._tool_delta(index, tool_call(block, "")))]
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        return []

    def _block_delta(self, data: dict) -> list[dict]:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return []
        if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
            return [self._chunk({"content": delta["text"]})]
        if delta.get("type") == "input_json_delta":
            partial = delta.get("partial_json")
            call = {"function": {"arguments": partial if isinstance(partial, str) else ""}}
            tool_delta = self._tool_delta(data.get("index"), call)
            return [self._chunk(tool_delta)] if tool_delta else []
        # thinking_delta, signature_delta, citations_delta: nothing OpenAI-shaped to send.
        return []


class SseData(Protocol):
    """What the relay reads of an SSE event: its payload (an upstream event or a translated one)."""

    data: str


class _Event:
    """What the gateway reads from an SSE event: its ``data`` text."""

    __slots__ = ("data",)

    def __init__(self, data: str) -> None:
        self.data = data


async def translate_events(events: AsyncIterator[SseData], *, model: str) -> AsyncIterator[SseData]:
    """Wrap the upstream's SSE events so the gateway reads OpenAI chunks from them.

    An event that is not JSON is passed through untouched, so the gateway's own malformed-
    chunk handling applies to it as it does to an OpenAI-compatible upstream.
    """
    translator = StreamTranslator(model=model)
    async for event in events:
        try:
            data = jsonio.loads(event.data)
        except ValueError:
            yield event
            continue
        if not isinstance(data, dict):
            yield event
            continue
        for chunk in translator.feed(None, data):
            yield _Event(jsonio.dumps(chunk).decode())
