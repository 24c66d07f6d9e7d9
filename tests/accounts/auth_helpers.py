"""Helpers for the sign-in tests: RFC 6238 codes, and a fake OAuth 2 / OpenID Connect
provider on 127.0.0.1 that answers as GitHub and Google do: an authorize endpoint that
redirects back with a code, token endpoints (Google's returns an ``id_token``), and GitHub's
user and emails API. allauth's GitHub and Google adapters are pointed at it; the sign-in flow
itself is allauth's, driven with Django's test client or a browser."""

import base64
import hashlib
import hmac
import itertools
import json
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import jwt
from allauth.socialaccount.providers.github.views import GitHubOAuth2Adapter
from allauth.socialaccount.providers.google.views import ID_TOKEN_ISSUER, GoogleOAuth2Adapter
from django.test import Client

CLIENT_ID = "lowrouter-test-client"
CLIENT_SECRET = "lowrouter-test-secret"


def totp_code(secret: str) -> str:
    """RFC 6238 with the authenticator apps' defaults: SHA-1, 30-second steps, 6 digits."""
    counter = int(time.time() // 30)
    digest = hmac.new(base64.b32decode(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


@dataclass
class Identity:
    """The person signed in at the provider."""

    uid: str
    email: str
    verified: bool = True
    name: str = "Ada Lovelace"


@dataclass
class FakeProvider:
    url: str = ""
    identity: Identity | None = None
    codes: dict[str, Identity] = field(default_factory=dict)
    tokens: dict[str, Identity] = field(default_factory=dict)
    counter: Any = field(default_factory=lambda: itertools.count(1))
    token_requests: list[dict[str, str]] = field(default_factory=list)


def _id_token(identity: Identity) -> str:
    now = int(time.time())
    claims = {
        "iss": ID_TOKEN_ISSUER,
        "aud": CLIENT_ID,
        "sub": identity.uid,
        "email": identity.email,
        "email_verified": identity.verified,
        "name": identity.name,
        "iat": now,
        "exp": now + 300,
    }
    # Fetched straight from the token endpoint, so allauth does not check the signature
    # (OpenID Connect Core 3.1.3.7); a key is still needed to produce a JWT.
    return jwt.encode(claims, "fake-provider-signing-key-of-32-bytes!", algorithm="HS256")


def make_handler(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _json(self, body: Any, status: int = 200) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _bearer(self) -> Identity | None:
            auth = self.headers.get("Authorization", "")
            return fake.tokens.get(auth.split(" ", 1)[-1])

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            if parts.path.endswith("/authorize") or parts.path.endswith("/auth"):
                if query.get("client_id") != CLIENT_ID or fake.identity is None:
                    self._json({"error": "unauthorized_client"}, 400)
                    return
                code = f"code-{next(fake.counter)}"
                fake.codes[code] = fake.identity
                back = {"code": code, "state": query["state"]}
                self.send_response(302)
                self.send_header("Location", f"{query['redirect_uri']}?{urlencode(back)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            identity = self._bearer()
            if identity is None:
                self._json({"message": "Bad credentials"}, 401)
            elif parts.path == "/api/user":
                self._json({"id": int(identity.uid), "login": "ada", "name": identity.name})
            elif parts.path == "/api/user/emails":
                self._json(
                    [{"email": identity.email, "primary": True, "verified": identity.verified}]
                )
            else:
                self._json({"message": "Not Found"}, 404)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            fake.token_requests.append({"path": self.path, **form})
            identity = fake.codes.pop(form.get("code", ""), None)
            if identity is None or form.get("client_secret") != CLIENT_SECRET:
                self._json({"error": "invalid_grant"}, 400)
                return
            token = f"token-{next(fake.counter)}"
            fake.tokens[token] = identity
            body = {"access_token": token, "token_type": "bearer", "expires_in": 3600}
            if self.path.startswith("/google/"):
                body["id_token"] = _id_token(identity)
            self._json(body)

    return Handler


def run_fake_provider(monkeypatch: Any) -> Iterator[FakeProvider]:
    """Serve the fake and point allauth's GitHub and Google adapters at it."""
    fake = FakeProvider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    for attr, path in [
        ("authorize_url", "/login/oauth/authorize"),
        ("access_token_url", "/login/oauth/access_token"),
        ("profile_url", "/api/user"),
        ("emails_url", "/api/user/emails"),
    ]:
        monkeypatch.setattr(GitHubOAuth2Adapter, attr, fake.url + path)
    monkeypatch.setattr(GoogleOAuth2Adapter, "authorize_url", fake.url + "/google/auth")
    monkeypatch.setattr(GoogleOAuth2Adapter, "access_token_url", fake.url + "/google/token")
    yield fake
    server.shutdown()
    server.server_close()


def configure_providers(settings: Any, *names: str) -> None:
    """Give the named providers a client, as the GITHUB_/GOOGLE_CLIENT_ID variables do."""
    app = {"client_id": CLIENT_ID, "secret": CLIENT_SECRET}
    settings.SOCIALACCOUNT_PROVIDERS = {
        name: {**conf, **({"APPS": [app]} if name in names else {})}
        for name, conf in settings.SOCIALACCOUNT_PROVIDERS.items()
        if name in ("github", "google")
    }


def sign_in_with(client: Client, fake: FakeProvider, provider: str, identity: Identity) -> Any:
    """Press the provider's button, consent at the provider, come back with the code: the
    response of the callback (a redirect to the dashboard or to the sign-up form)."""
    fake.identity = identity
    start = client.post(f"/accounts/{provider}/login/")
    assert start.status_code == 302, start.content[:500]
    authorize = start["Location"]
    assert authorize.startswith(fake.url), authorize
    consent = httpx.get(authorize, follow_redirects=False)
    assert consent.status_code == 302, consent.text
    callback = urlsplit(consent.headers["Location"])
    assert callback.netloc == "testserver", callback
    return client.get(f"{callback.path}?{callback.query}")
