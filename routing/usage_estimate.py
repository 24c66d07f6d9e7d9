"""Usage for a stream that ended without the upstream's usage block: the client left, the
upstream cut the stream or went silent, or it never sent one. No tokenizer is available offline,
so the gateway counts what it can prove, and stays below the real numbers (docs/api.md,
"Estimated usage"):

- completion: one token per non-empty piece of output relayed to the client (text, reasoning,
  a tool call's name or arguments). Every such piece is at least one token; a piece that held
  several counts as one.
- prompt: one token per six bytes of the request's text (message text, tool calls, tool
  definitions; images count nothing). Ordinary text in any language takes fewer bytes per
  token than that with the tokenizers we price (about 2 to 4.5), so this undercounts too.

Nothing relayed, nothing estimated: a stream that delivered no output is not charged.
"""

from math import ceil

from billing.costs import Usage
from lowrouter import jsonio
from routing.validation import ChatRequest

PROMPT_BYTES_PER_TOKEN = 6


def output_pieces(choices: list) -> int:
    """How many non-empty pieces of output the deltas of these stream choices carry."""
    pieces = 0
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        if delta.get("content"):
            pieces += 1
        # Providers name reasoning either way; some send both with the same text: one piece.
        if delta.get("reasoning_content") or delta.get("reasoning"):
            pieces += 1
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            pieces += sum(1 for call in calls if _function_text(call))
    return pieces


def _function_text(call: object) -> str:
    """A tool call's (piece of) name and arguments, as the client received them."""
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict):
        return ""
    name, arguments = fn.get("name"), fn.get("arguments")
    return (name if isinstance(name, str) else "") + (
        arguments if isinstance(arguments, str) else ""
    )


def prompt_text_bytes(req: ChatRequest) -> int:
    """UTF-8 bytes of the text the request sends the model (no image data)."""
    size = 0
    for message in req.messages:
        content = message.get("content")
        if isinstance(content, str):
            size += len(content.encode())
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    size += len(part["text"].encode())
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            size += sum(len(_function_text(call).encode()) for call in calls)
    tools = req.body.get("tools")
    if tools:
        size += len(jsonio.dumps(tools))
    return size


def estimate_usage(req: ChatRequest, relayed_pieces: int) -> Usage:
    """The usage billed for a stream without a usage block that relayed ``relayed_pieces``."""
    if relayed_pieces <= 0:
        return Usage()
    prompt = max(1, ceil(prompt_text_bytes(req) / PROMPT_BYTES_PER_TOKEN))
    return Usage(prompt_tokens=prompt, completion_tokens=relayed_pieces)
