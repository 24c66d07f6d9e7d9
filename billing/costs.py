"""What a request costs in micro-credits, from usage and the prices in force."""

from dataclasses import dataclass
from decimal import Decimal

from billing.money import token_cost_micros


@dataclass(frozen=True)
class Prices:
    """EUR per 1M tokens: the upstream's prices and the platform fee charged on every token."""

    prompt: Decimal
    completion: Decimal
    cached_prompt: Decimal | None
    platform_fee: Decimal


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: dict | None) -> "Usage | None":
        if not isinstance(usage, dict):
            return None
        try:
            prompt = int(usage.get("prompt_tokens") or 0)
            completion = int(usage.get("completion_tokens") or 0)
            details = usage.get("prompt_tokens_details") or {}
            cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
            total = int(usage.get("total_tokens") or 0)
            out = usage.get("completion_tokens_details") or {}
            reasoning = int(out.get("reasoning_tokens") or 0) if isinstance(out, dict) else 0
        except (TypeError, ValueError):
            return None
        prompt, completion = max(0, prompt), max(0, completion)
        return cls(
            prompt,
            _output_tokens(prompt, completion, total, reasoning),
            min(max(0, cached), prompt),
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _output_tokens(prompt: int, completion: int, total: int, reasoning: int) -> int:
    """Every token the upstream generated, reasoning included: reasoning is output, billed at
    the completion price. OpenAI counts reasoning inside ``completion_tokens``; some compatible
    servers report it beside them, seen as a ``total_tokens`` larger than prompt plus
    completion, or as more reasoning tokens than completion tokens. The largest reading wins."""
    if reasoning > completion:
        completion += reasoning
    return max(completion, total - prompt)


def usage_cost_micros(usage: Usage, prices: Prices) -> int:
    """Cached prompt tokens at the cached rate (when the offering has one); the fee on all."""
    cached_rate = prices.cached_prompt if prices.cached_prompt is not None else prices.prompt
    fee = prices.platform_fee
    return (
        token_cost_micros(usage.prompt_tokens - usage.cached_prompt_tokens, prices.prompt + fee)
        + token_cost_micros(usage.cached_prompt_tokens, cached_rate + fee)
        + token_cost_micros(usage.completion_tokens, prices.completion + fee)
    )


def worst_case_micros(prompt_tokens: int, completion_tokens: int, prices: Prices) -> int:
    """The most a request can cost: every prompt token uncached, the full completion bound."""
    return token_cost_micros(
        prompt_tokens, prices.prompt + prices.platform_fee, round_up=True
    ) + token_cost_micros(completion_tokens, prices.completion + prices.platform_fee, round_up=True)
