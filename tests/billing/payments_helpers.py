"""Helpers for the money-in tests: a fake Stripe API on 127.0.0.1, signed webhooks, buyers.

The fake speaks Stripe's wire format (form-encoded bracket keys in, JSON out, Bearer auth,
Idempotency-Key) for the two calls we make: create a Checkout Session, create a Refund.
"""

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

import httpx
from django.test import Client

from accounts.models import User
from billing.checkout import start_checkout
from billing.models import TopUp, TopUpStatus

WEBHOOK_SECRET = "whsec_test_secret"


@dataclass
class FakeStripe:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Set to an HTTP status to make the next call fail with a Stripe error body.
    fail_next: int | None = None
    # How many calls are made but answered with a 500, as when the answer is lost on the way.
    lose_answers: int = 0
    # When set, a refund call is answered only once it is set (``refund_arrived`` says when
    # the call came in): a slow Stripe.
    release_refunds: threading.Event | None = None
    refund_arrived: threading.Event = field(default_factory=threading.Event)
    counter: Any = field(default_factory=lambda: itertools.count(1))
    idempotent: dict[str, dict[str, Any]] = field(default_factory=dict)


def make_stripe_handler(fake: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("Request-Id", f"req_{next(fake.counter)}")
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length", 0))
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            record = {"path": self.path, "form": form, "headers": dict(self.headers)}
            fake.requests.append(record)
            if self.headers.get("Authorization") != "Bearer sk_test_x":
                self._send(401, {"error": {"type": "invalid_request_error", "message": "key"}})
                return
            if fake.fail_next:
                status, fake.fail_next = fake.fail_next, None
                err = {"type": "invalid_request_error", "message": "Injected failure."}
                self._send(status, {"error": err})
                return
            if self.path == "/v1/refunds" and fake.release_refunds is not None:
                fake.refund_arrived.set()
                fake.release_refunds.wait(timeout=30)
            key = self.headers.get("Idempotency-Key", "")
            if key and key in fake.idempotent:
                self._answer(200, fake.idempotent[key])
                return
            n = next(fake.counter)
            if self.path == "/v1/checkout/sessions":
                body: dict[str, Any] = {
                    "id": f"cs_test_{n}",
                    "object": "checkout.session",
                    "url": f"https://checkout.stripe.test/c/pay/cs_test_{n}",
                    "mode": "payment",
                    "status": "open",
                    "payment_status": "unpaid",
                    "currency": "eur",
                    "client_reference_id": form.get("client_reference_id"),
                    "metadata": {
                        k[len("metadata[") : -1]: v
                        for k, v in form.items()
                        if k.startswith("metadata[")
                    },
                }
            elif self.path == "/v1/refunds":
                body = {
                    "id": f"re_test_{n}",
                    "object": "refund",
                    "amount": int(form["amount"]),
                    "currency": "eur",
                    "payment_intent": form.get("payment_intent"),
                    "status": "succeeded",
                }
            else:
                self._send(404, {"error": {"type": "invalid_request_error", "message": "path"}})
                return
            if key:
                fake.idempotent[key] = body
            self._answer(200, body)

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            if fake.lose_answers:
                fake.lose_answers -= 1
                err = {"type": "api_error", "message": "Injected lost answer."}
                self._send(500, {"error": err})
                return
            self._send(status, body)

    return Handler


def sign_payload(payload: bytes, *, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """Stripe's scheme: t=<unix>,v1=hex(HMAC-SHA256(secret, "<t>.<raw body>"))."""
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def session_event(
    *,
    event_id: str,
    type: str,
    session_id: str,
    topup_id: int,
    payment_status: str = "paid",
    payment_intent: str = "pi_test_1",
) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": type,
        "api_version": "2025-01-27.acacia",
        "created": int(time.time()),
        "livemode": False,
        "data": {
            "object": {
                "id": session_id,
                "object": "checkout.session",
                "payment_status": payment_status,
                "payment_intent": payment_intent,
                "metadata": {"topup_id": str(topup_id)},
            }
        },
    }


def charge_refunded_event(*, event_id: str, payment_intent: str, amount_refunded: int) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "type": "charge.refunded",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": "ch_test_1",
                "object": "charge",
                "payment_intent": payment_intent,
                "amount_refunded": amount_refunded,
                "refunded": True,
            }
        },
    }


def post_event(client: Client, event: dict[str, Any], *, signature: str | None = None) -> Any:
    payload = json.dumps(event).encode()
    return client.post(
        "/billing/stripe/webhook",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature if signature is not None else sign_payload(payload),
    )


def pay_topup(user: User, amount: str, n: int, *, sepa: bool = False) -> TopUp:
    """Check out ``amount`` EUR of credits and have Stripe's webhook say it was paid: at once
    for a card, through ``async_payment_succeeded`` after an unpaid completion for SEPA."""
    topup, _ = start_checkout(
        account=user, credits_eur=Decimal(amount), success_url="s", cancel_url="c"
    )
    events = [("checkout.session.completed", "paid")]
    if sepa:
        events = [
            ("checkout.session.completed", "unpaid"),
            ("checkout.session.async_payment_succeeded", "paid"),
        ]
    for i, (type_, payment_status) in enumerate(events):
        event = session_event(
            event_id=f"evt_{n}_{i}",
            type=type_,
            session_id=topup.stripe_session_id,
            topup_id=topup.pk,
            payment_status=payment_status,
            payment_intent=f"pi_{n}",
        )
        assert post_event(Client(), event).status_code == 200
    topup.refresh_from_db()
    return topup


@dataclass
class FakeVies:
    """The VIES REST API on 127.0.0.1 (``GET /ms/{CC}/vat/{number}``, JSON out): the numbers in
    ``valid`` are known; ``user_error`` answers that VIES cannot say (MS_UNAVAILABLE, ...);
    ``status`` answers with an HTTP error."""

    url: str = ""
    valid: set[str] = field(default_factory=set)
    user_error: str | None = None
    status: int | None = None
    # The numbers asked about, with their country prefix.
    calls: list[str] = field(default_factory=list)


def make_vies_handler(fake: FakeVies) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parts = self.path.strip("/").split("/")
            if len(parts) != 4 or parts[0] != "ms" or parts[2] != "vat":
                self.send_error(404)
                return
            country, number = parts[1], parts[3]
            fake.calls.append(country + number)
            if fake.status is not None:
                self.send_error(fake.status)
                return
            known = country + number in fake.valid
            body = {
                "isValid": known and fake.user_error is None,
                "requestDate": "2026-03-01T10:00:00.000Z",
                "userError": fake.user_error or ("VALID" if known else "INVALID"),
                "name": "---",
                "address": "---",
                "requestIdentifier": "",
                "originalVatNumber": number,
                "vatNumber": number,
            }
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Handler


def report_checkout_paid(site: str, account: User, *, event_id: str) -> None:
    """Stripe reports, by its signed webhook sent over HTTP to a live server, that the
    account's pending top-up was paid."""
    topup = TopUp.objects.get(account=account, status=TopUpStatus.PENDING)
    event = session_event(
        event_id=event_id,
        type="checkout.session.completed",
        session_id=str(topup.stripe_session_id),
        topup_id=topup.pk,
    )
    payload = json.dumps(event).encode()
    answer = httpx.post(
        site + "/billing/stripe/webhook",
        content=payload,
        headers={"Stripe-Signature": sign_payload(payload), "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
