"""Every POST form of the site's pages, fed hostile values, answers with the form and an error,
never an HTTP 500.

The forms are found, not listed: every page the URLconf routes without a parameter is fetched
(signed out, and signed in as a verified customer), its ``<form method="post">`` elements read,
and each form's first answer searched for the forms it leads to (the top-up's confirm step). The
admin's forms are left to the admin's own tests, the API to the schemathesis run.

Each form is sent: every field at once set to each hostile value, each field alone set to a
hostile value drawn with a fixed seed, a field repeated, and a field left out. The bodies are
written byte by byte, so they can carry what no browser sends: a NUL, a lone surrogate's
bytes, bytes that are not UTF-8.
"""

import random
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import quote, urljoin, urlsplit

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.models import BillingProfile
from billing.onboarding import create_account

SEED = 16
SKIPPED_PREFIXES = ("admin/", "api/")
# Percent-encoded as sent: some are not valid UTF-8 on purpose.
HOSTILE = [
    "%00",
    "abc%00def",
    "%ED%A0%80",  # a lone surrogate (U+D800) as its three bytes
    "%FF%FE",
    "1e999999",
    "-1e999999",
    "NaN",
    "-Infinity",
    "9" * 400,
    "A" * 20_000,
    "-1",
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "%27%20OR%201%3D1%20--",
    "%E2%80%AE%F0%9F%92%A9",
]
ERROR_MARKERS = ('class="errorlist', 'role="alert"', 'class="error"')


@dataclass(frozen=True)
class Form:
    page: str
    action: str
    fields: tuple[tuple[str, str], ...]
    signed_in: bool

    @property
    def key(self) -> tuple:
        """Two forms are the same form when they send the same fields to the same place (the
        CSRF token's value differs from one page view to the next)."""
        return self.action, tuple(name for name, _ in self.fields), self.signed_in

    @property
    def editable(self) -> list[str]:
        return [name for name, _ in self.fields if name != "csrfmiddlewaretoken"]


@dataclass
class _FormParser(HTMLParser):
    page: str
    forms: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    _current: list[tuple[str, str]] | None = None
    _buttons: list[tuple[str, str]] = field(default_factory=list)
    _action: str = ""
    _select: str | None = None

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method", "get").lower() == "post":
            self._current, self._buttons = [], []
            self._action = urljoin(self.page, a.get("action") or self.page)
        elif self._current is None or "name" not in a:
            return
        elif tag == "button" or a.get("type") in ("submit", "image"):
            # A form with named buttons is one form per button: each sends a different action.
            self._buttons.append((a["name"], a.get("value", "")))
        elif tag == "input" and a.get("type") not in ("button", "reset"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self._current.append((a["name"], a.get("value", "")))
        elif tag in ("textarea", "select"):
            self._current.append((a["name"], ""))
            self._select = a["name"] if tag == "select" else None
        elif tag == "option" and self._select and "value" in a:
            name, value = self._current[-1]
            if name == self._select and not value:
                self._current[-1] = (name, a["value"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._current is not None:
            for button in self._buttons or [None]:
                self.forms.append((self._action, self._current + ([button] if button else [])))
            self._current = None
        elif tag == "select":
            self._select = None


def forms_in(page: str, html: str, signed_in: bool) -> list[Form]:
    parser = _FormParser(page)
    parser.feed(html)
    return [
        Form(page, urlsplit(action).path, tuple(fields), signed_in)
        for action, fields in parser.forms
    ]


def parameterless_paths(patterns: list, prefix: str = "") -> list[str]:
    """Every path the URLconf routes that takes no parameter."""
    paths = []
    for pattern in patterns:
        route = str(pattern.pattern)
        if any(ch in route for ch in "<(^$\\"):
            continue
        if isinstance(pattern, URLResolver):
            paths += parameterless_paths(pattern.url_patterns, prefix + route)
        elif isinstance(pattern, URLPattern):
            paths.append("/" + prefix + route)
    return [p for p in paths if not p[1:].startswith(SKIPPED_PREFIXES)]


def encode(pairs: list[tuple[str, str]]) -> bytes:
    """A form body; values are taken as already percent-encoded (hostile bytes stay as they are)."""
    return "&".join(f"{quote(name)}={value}" for name, value in pairs).encode()


def submit(client: Client, form: Form, pairs: list[tuple[str, str]]) -> object:
    return client.post(form.action, encode(pairs), content_type="application/x-www-form-urlencoded")


def shows_an_error(form: Form, response: object) -> bool:
    """The form is answered with a refusal: a 4xx page, the page again with an error on it, or
    a redirect back to the form's page (allauth's address list answers a pick that is not one
    of the account's addresses so, changing nothing)."""
    if 400 <= response.status_code < 500:
        return True
    if response.status_code == 302 and response["Location"] == form.page:
        return True
    if response.streaming:  # a download was served: the values were not refused
        return False
    html = response.content.decode(errors="replace")
    return response.status_code == 200 and any(marker in html for marker in ERROR_MARKERS)


@pytest.fixture
def customer(db, settings):
    # A fast hasher: every sign-in attempt hashes a password, and there are many here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Sign-in pages limit attempts; a 429 would stand in for the form's own answer.
    settings.ACCOUNT_RATE_LIMITS = False
    user = create_account(email="fuzz@example.com", password="a-good-password-1", verified=True)
    # A billing country, so a top-up can be quoted and its confirm step reached.
    BillingProfile.objects.create(account=user, country="FR", address="1 rue du Test")
    return user


def client_for(user, signed_in: bool) -> Client:
    # A 500 is counted as an answer here, not raised: one run lists every form that fails.
    client = Client(raise_request_exception=False)
    if signed_in:
        client.force_login(user)
    return client


def discover_forms(user) -> list[Form]:
    found: dict[tuple, Form] = {}
    for signed_in in (False, True):
        client = client_for(user, signed_in)
        for path in parameterless_paths(get_resolver().url_patterns):
            response = client.get(path)
            if response.status_code == 200 and "html" in response.get("Content-Type", ""):
                for form in forms_in(path, response.content.decode(), signed_in):
                    found.setdefault(form.key, form)
    # The forms a first answer leads to (a quote leads to its confirm step).
    for form in list(found.values()):
        response = submit(client_for(user, form.signed_in), form, list(form.fields))
        # A download (the data export) leads to no form.
        if response.status_code in (200, 400) and "html" in response.get("Content-Type", ""):
            for follow in forms_in(form.action, response.content.decode(), form.signed_in):
                found.setdefault(follow.key, follow)
    return sorted(found.values(), key=lambda f: (f.action, f.signed_in))


def hostile_submissions(form: Form, rng: random.Random) -> list[tuple[str, list]]:
    defaults = list(form.fields)
    cases: list[tuple[str, list]] = []
    editable = form.editable
    if editable:
        for value in HOSTILE:
            pairs = [(n, value if n in editable else v) for n, v in defaults]
            cases.append((f"every field = {value[:20]}", pairs))
    for name in editable:
        value = rng.choice(HOSTILE)
        pairs = [(n, value if n == name else v) for n, v in defaults]
        cases.append((f"{name} = {value[:20]}", pairs))
        cases.append((f"{name} twice", [*defaults, (name, rng.choice(HOSTILE))]))
        cases.append((f"{name} left out", [(n, v) for n, v in defaults if n != name]))
    cases.append(("an unknown field", [*defaults, ("%00unknown", rng.choice(HOSTILE))]))
    return cases


def test_every_post_form_answers_hostile_values_with_a_form_error_never_a_500(customer):
    forms = discover_forms(customer)
    actions = {form.action for form in forms}
    # The discovery found the site's own forms, not just the sign-in pages' ones.
    assert {"/billing/topup", "/billing/topup/confirm", "/billing/redeem"} <= actions
    assert {"/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"} <= actions
    rng = random.Random(SEED)
    failures = []
    sent = 0
    for form in forms:
        for label, pairs in hostile_submissions(form, rng):
            response = submit(client_for(customer, form.signed_in), form, pairs)
            sent += 1
            where = f"{form.action} (signed in: {form.signed_in}) {label}"
            if response.status_code >= 500:
                failures.append(f"{where}: HTTP {response.status_code}")
            elif label.startswith("every field") and not shows_an_error(form, response):
                failures.append(f"{where}: HTTP {response.status_code} without a form error")
    assert failures == [], "\n".join(failures)
    assert sent >= 100
