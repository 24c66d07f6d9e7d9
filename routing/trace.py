"""The routing trace: why a request went where it went, as stored on its generation record.

Built by the router (``routing.router.plan_route``) with what it decided, then given the
gateway's upstream attempts as they happen; serialised once, by ``to_dict``, when the request
settles. The stored JSON is what the API record and the pages show, so its keys are a public
format: add fields, never rename them.
"""

import time
from dataclasses import dataclass, field
from enum import StrEnum

from routing.upstream import FailureKind


class AttemptOutcome(StrEnum):
    """How an upstream attempt ended, beyond the failure kinds that end it before any byte."""

    OK = "ok"
    CLIENT_DISCONNECTED = "client_disconnected"
    FAILED_MID_STREAM = "failed_mid_stream"


@dataclass
class Attempt:
    provider: str
    region: str
    outcome: AttemptOutcome | FailureKind
    latency_ms: int
    status: int | None = None
    retry_after: float | None = None
    # After the first byte: what broke the stream (the outcome is then FAILED_MID_STREAM).
    failure: FailureKind | None = None

    def to_dict(self) -> dict:
        outcome = str(self.outcome)
        if self.failure is not None:
            outcome = f"{outcome}:{self.failure}"
        out: dict = {
            "provider": self.provider,
            "region": self.region,
            "outcome": outcome,
            "latency_ms": self.latency_ms,
        }
        if isinstance(self.outcome, FailureKind):  # failed before the first byte
            out["status"] = self.status
            out["retry_after"] = self.retry_after
        return out


@dataclass
class RoutingTrace:
    requested_model: str
    resolved_model: str
    constraints: dict
    candidates: list[dict]
    removed: list[dict]
    winner_reason: str
    tied: list[str]
    failover: dict
    attempts: list[Attempt] = field(default_factory=list)

    def add_attempt(
        self,
        provider: str,
        region: str,
        outcome: AttemptOutcome | FailureKind,
        started: float,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """One upstream attempt, timed from ``started`` (a ``time.monotonic()`` reading)."""
        latency_ms = int((time.monotonic() - started) * 1000)
        if not isinstance(outcome, AttemptOutcome):
            outcome = FailureKind(outcome)
        self.attempts.append(
            Attempt(provider, region, outcome, latency_ms, status=status, retry_after=retry_after)
        )

    def end_last_attempt(
        self, outcome: AttemptOutcome, *, failure: FailureKind | None = None
    ) -> None:
        """The attempt that was streaming ended otherwise than well: the client left, or the
        upstream failed after the first byte (``failure`` says how)."""
        self.attempts[-1].outcome = outcome
        self.attempts[-1].failure = failure

    def to_dict(self) -> dict:
        return {
            "requested_model": self.requested_model,
            "resolved_model": self.resolved_model,
            "constraints": self.constraints,
            "candidates": self.candidates,
            "removed": self.removed,
            "attempts": [a.to_dict() for a in self.attempts],
            "winner_reason": self.winner_reason,
            "tied": self.tied,
            "failover": self.failover,
        }
