"""A real HTTP server on 127.0.0.1 playing the ECB feed (and remote price lists)."""

import threading
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

# Trimmed from a real eurofxref file: same envelope, namespaces, quoting and nesting.
ECB_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" \
xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
\t<gesmes:subject>Reference rates</gesmes:subject>
\t<gesmes:Sender>
\t\t<gesmes:name>European Central Bank</gesmes:name>
\t</gesmes:Sender>
\t<Cube>
"""
ECB_TAIL = "\t</Cube>\n</gesmes:Envelope>"

DEFAULT_RATES = {
    "USD": "1.0705",
    "JPY": "171.94",
    "GBP": "0.84638",
    "CHF": "0.9629",
    "IDR": "17487.21",
    "CNY": "7.7748",
}


def ecb_xml(days: dict[date, dict[str, str]]) -> bytes:
    """A eurofxref document; several days make the 90-day file (newest first, as the ECB does)."""
    parts = [ECB_HEAD]
    for day in sorted(days, reverse=True):
        parts.append(f"\t\t<Cube time='{day.isoformat()}'>\n")
        for currency, rate in days[day].items():
            parts.append(f"\t\t\t<Cube currency='{currency}' rate='{rate}'/>\n")
        parts.append("\t\t</Cube>\n")
    parts.append(ECB_TAIL)
    return "".join(parts).encode()


class FeedServer:
    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, str]] = {}
        self.hits: list[str] = []
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                feed.hits.append(self.path)
                status, body, ctype = feed.routes.get(self.path, (404, b"not found", "text/plain"))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, path: str, body: bytes, status: int = 200, ctype: str = "text/xml") -> None:
        self.routes[path] = (status, body, ctype)

    def serve_rates(self, daily: dict[date, dict[str, str]], history: dict | None = None) -> None:
        self.serve("/eurofxref-daily.xml", ecb_xml(daily))
        self.serve("/eurofxref-hist-90d.xml", ecb_xml(history or daily))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feed(settings) -> Iterator[FeedServer]:
    server = FeedServer()
    settings.LOWROUTER_ECB_DAILY_URL = server.url + "/eurofxref-daily.xml"
    settings.LOWROUTER_ECB_90D_URL = server.url + "/eurofxref-hist-90d.xml"
    settings.LOWROUTER_FX_BUFFER_PERCENT = Decimal("3.0")
    settings.LOWROUTER_FX_FLOORS = {"USD": "1.0"}
    settings.OPERATOR_EMAILS = ["ops@example.com"]
    yield server
    server.close()
