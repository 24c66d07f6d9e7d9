"""The OpenAPI 3.0 description of the public API, served at /api/v1/openapi.json.

Written by hand from what the views accept and answer. The fuzz suite in tests/reliability runs
schemathesis against it with every check, positive and negative data alike: what this allows
must be accepted and what it forbids refused: as strict as the gateway, no more, no less.

Every error answer shares one documented shape: ``{"error": {"type", "code", "message",
"param"}}``, except on the Anthropic Messages path, which answers in Messages' own:
``{"type": "error", "error": {"type", "code", "message"}}``.
"""

from django.http import HttpRequest, HttpResponse, JsonResponse

from routing.errors import ApiError
from routing.validation import MAX_TOKENS_CEILING

_ERROR = {"$ref": "#/components/schemas/Error"}
# What a model id looks like ("demo/echo-small"); the gateway answers any other string with a
# 400 or a 404, never by routing it.
_MODEL_ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "pattern": "^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$",
    "description": "A LowRouter model id, e.g. demo/echo-small",
}
_MESSAGES_ERROR = {"$ref": "#/components/schemas/MessagesError"}


def _errors(*statuses: int, shape: dict = _ERROR) -> dict:
    descriptions = {
        400: "Invalid request",
        401: "Missing, malformed, revoked, disabled or expired API key",
        402: "Insufficient credits",
        403: "Model not allowed for this key",
        404: "Not found",
        405: "Method not allowed",
        413: "Body too large",
        429: "Key limit reached or rate limited",
        502: "Upstream failure",
        503: "No provider available, or the gateway's database is unreachable",
        504: "Upstream timeout",
    }
    return {
        str(s): {
            "description": descriptions[s],
            "content": {"application/json": {"schema": shape}},
        }
        for s in statuses
    }


def _json_ok(schema: dict, description: str = "OK") -> dict:
    return {
        "200": {"description": description, "content": {"application/json": {"schema": schema}}}
    }


_MAX_TOKENS = {"type": "integer", "minimum": 1, "maximum": MAX_TOKENS_CEILING}
_SLUG = {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,63}$"}
_CONTENT_PART = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"type": "string"}},
}

_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {
            "oneOf": [
                {"type": "string"},
                {"type": "array", "items": _CONTENT_PART},
            ],
            "nullable": True,
        },
        "name": {"type": "string"},
        "tool_call_id": {"type": "string"},
        "tool_calls": {"type": "array", "items": {"type": "object"}},
    },
}

_CHAT_REQUEST = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": _MODEL_ID,
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "max_tokens": _MAX_TOKENS,
        "max_completion_tokens": _MAX_TOKENS,
        "stream": {"type": "boolean"},
        "stream_options": {
            "type": "object",
            "properties": {"include_usage": {"type": "boolean"}},
        },
        "temperature": {"type": "number"},
        "top_p": {"type": "number"},
        "n": {"type": "integer", "minimum": 1, "maximum": 16},
        "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "seed": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
        "user": {"type": "string"},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"oneOf": [{"type": "string"}, {"type": "object"}]},
        "response_format": {"type": "object"},
        "metadata": {"type": "object"},
        "route": {
            "type": "object",
            "description": "LowRouter routing options for this request (region, provider).",
            "additionalProperties": False,
            "properties": {
                "provider": _SLUG,
                "region": _SLUG,
                "prefer_low_carbon": {"type": "boolean"},
                "fallback": {"type": "boolean"},
            },
        },
    },
}

_LOWROUTER_BLOCK = {
    "type": "object",
    "properties": {
        "generation_id": {"type": "string"},
        "provider": {"type": "string"},
        "region": {"type": "string"},
        "eco": {"type": "object"},
    },
}

_CHAT_RESPONSE = {
    "type": "object",
    "required": ["id", "object", "model", "choices"],
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string"},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {"type": "array", "items": {"type": "object"}},
        "usage": {"type": "object"},
        "lowrouter": _LOWROUTER_BLOCK,
    },
}


def _block(kind: str, **properties: dict) -> dict:
    """A Messages content block of type ``kind``; every property named is required."""
    return {
        "type": "object",
        "required": ["type", *properties],
        "properties": {"type": {"type": "string", "enum": [kind]}, **properties},
    }


_TEXT_BLOCK = _block("text", text={"type": "string"})
_IMAGE_BLOCK = _block(
    "image",
    source={
        "oneOf": [
            _block(
                "base64", media_type={"type": "string"}, data={"type": "string", "minLength": 1}
            ),
            _block("url", url={"type": "string"}),
        ]
    },
)


def _turn(role: str, *blocks: dict) -> dict:
    """A Messages turn. Thinking blocks are accepted and left out (undocumented: a turn of
    thinking alone has nothing to send)."""
    return {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "enum": [role]},
            "content": {
                "oneOf": [
                    {"type": "string"},
                    {
                        "type": "array",
                        "minItems": 1,
                        "items": {"oneOf": [_IMAGE_BLOCK, *blocks]},
                    },
                ]
            },
        },
    }


_USER_TURN = _turn(
    "user",
    _TEXT_BLOCK,
    _block(
        "tool_result",
        tool_use_id={"type": "string"},
        content={"oneOf": [{"type": "string"}, {"type": "array", "items": _TEXT_BLOCK}]},
    ),
)
_ASSISTANT_TURN = _turn(
    "assistant",
    # An assistant turn of empty text says nothing, and is not sent.
    _block("text", text={"type": "string", "minLength": 1}),
    _block("tool_use", id={"type": "string"}, name={"type": "string"}),
)

_MESSAGES_REQUEST = {
    "type": "object",
    "required": ["model", "max_tokens", "messages"],
    "properties": {
        "model": _MODEL_ID,
        "max_tokens": _MAX_TOKENS,
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {"oneOf": [_USER_TURN, _ASSISTANT_TURN]},
        },
        "system": {"oneOf": [{"type": "string"}, {"type": "array", "items": _TEXT_BLOCK}]},
        "stop_sequences": {"type": "array", "items": {"type": "string"}},
        "stream": {"type": "boolean"},
        "temperature": {"type": "number"},
        "top_p": {"type": "number"},
        "tools": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "type": {"type": "string", "enum": ["custom"]},
                    "description": {"type": "string"},
                    "input_schema": {"type": "object"},
                },
            },
        },
        "tool_choice": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": {"type": "string", "enum": ["auto", "any", "none"]},
                        "disable_parallel_tool_use": {"type": "boolean"},
                    },
                },
                _block("tool", name={"type": "string"}),
            ]
        },
        "metadata": {"type": "object"},
    },
}

_MESSAGE_RESPONSE = {
    "type": "object",
    "required": ["id", "type", "role", "content", "model", "stop_reason", "usage"],
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string"},
        "role": {"type": "string"},
        "content": {"type": "array", "items": {"type": "object"}},
        "model": {"type": "string"},
        "stop_reason": {"type": "string", "nullable": True},
        "usage": {"type": "object"},
        "lowrouter": _LOWROUTER_BLOCK,
    },
}

_MODEL = {
    "type": "object",
    "required": ["id", "object"],
    "properties": {"id": {"type": "string"}, "object": {"type": "string"}},
}

_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_KEY_OR_BEARER: list[dict[str, list[str]]] = [{"anthropicKey": []}, {"bearer": []}]
_OPTIONAL_BEARER: list[dict[str, list[str]]] = [{"bearer": []}, {}]


def build_openapi() -> dict:
    """The description as a plain dict (no request needed: tests load it directly)."""
    generation_param = {
        "name": "generation_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "maxLength": 64},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "LowRouter API",
            "version": "1",
            "description": (
                "OpenAI-compatible chat completions with prepaid EUR credits and per-request "
                "eco metadata, and the same behind Anthropic's Messages format. Every error "
                'answer has the shape {"error": {"type", "code", "message", "param"}}, except '
                'on /anthropic/v1/messages: {"type": "error", "error": {"type", "code", '
                '"message"}}.'
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "anthropicKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["type", "code", "message", "param"],
                            "properties": {
                                "type": {"type": "string"},
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "param": {"type": "string", "nullable": True},
                            },
                        }
                    },
                },
                "MessagesError": {
                    "type": "object",
                    "required": ["type", "error"],
                    "properties": {
                        "type": {"type": "string", "enum": ["error"]},
                        "error": {
                            "type": "object",
                            "required": ["type", "code", "message"],
                            "properties": {
                                "type": {"type": "string"},
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
                "ChatCompletionRequest": _CHAT_REQUEST,
                "MessagesRequest": _MESSAGES_REQUEST,
                "Message": _MESSAGE_RESPONSE,
                "ChatCompletion": _CHAT_RESPONSE,
                "Model": _MODEL,
            },
        },
        "paths": {
            "/chat/completions": {
                "post": {
                    "operationId": "createChatCompletion",
                    "security": _BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "A completion (JSON), or a stream of SSE chunks "
                            "ending with data: [DONE] when stream is true",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/ChatCompletion"}
                                },
                                "text/event-stream": {"schema": {"type": "string"}},
                            },
                        },
                        **_errors(400, 401, 402, 403, 404, 413, 429, 502, 503, 504),
                    },
                }
            },
            "/anthropic/v1/messages": {
                "post": {
                    "operationId": "createMessage",
                    "summary": "Anthropic Messages API: the same request path, Anthropic's format",
                    "security": _KEY_OR_BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/MessagesRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "A message (JSON), or a stream of Messages events "
                            "(message_start ... message_stop) when stream is true",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Message"}
                                },
                                "text/event-stream": {"schema": {"type": "string"}},
                            },
                        },
                        **_errors(
                            400, 401, 402, 403, 404, 413, 429, 502, 503, 504, shape=_MESSAGES_ERROR
                        ),
                    },
                }
            },
            "/models": {
                "get": {
                    "operationId": "listModels",
                    "security": _OPTIONAL_BEARER,
                    "responses": {
                        **_json_ok(
                            {
                                "type": "object",
                                "required": ["object", "data"],
                                "properties": {
                                    "object": {"type": "string"},
                                    "data": {"type": "array", "items": _MODEL},
                                },
                            }
                        ),
                        **_errors(401),
                    },
                }
            },
            "/models/{model_id}": {
                "get": {
                    "operationId": "retrieveModel",
                    "security": _OPTIONAL_BEARER,
                    "parameters": [
                        {
                            "name": "model_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {**_json_ok(_MODEL), **_errors(401, 404)},
                }
            },
            "/generation/{generation_id}": {
                "get": {
                    "operationId": "getGeneration",
                    "security": _BEARER,
                    "parameters": [generation_param],
                    "responses": {**_json_ok({"type": "object"}), **_errors(401, 404)},
                }
            },
            "/metrics/{generation_id}": {
                "get": {
                    "operationId": "getGenerationMetrics",
                    "security": _BEARER,
                    "parameters": [generation_param],
                    "responses": {**_json_ok({"type": "object"}), **_errors(401, 404)},
                }
            },
            "/credits": {
                "get": {
                    "operationId": "getCredits",
                    "security": _BEARER,
                    "responses": {**_json_ok({"type": "object"}), **_errors(401)},
                }
            },
            "/key": {
                "get": {
                    "operationId": "getKey",
                    "security": _BEARER,
                    "responses": {**_json_ok({"type": "object"}), **_errors(401)},
                }
            },
            "/providers": {
                "get": {
                    "operationId": "listProviders",
                    "security": _OPTIONAL_BEARER,
                    "responses": {**_json_ok({"type": "object"}), **_errors(401)},
                }
            },
        },
    }


_DOCUMENT = build_openapi()


def openapi_json(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return ApiError(405, "method_not_allowed", "Use GET, HEAD on this endpoint.").response(
            {"Allow": "GET, HEAD"}
        )
    return JsonResponse(_DOCUMENT)
