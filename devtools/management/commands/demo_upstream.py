from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from devtools.demo_upstream import DemoConfig, run_demo_upstream


class Command(BaseCommand):
    help = (
        "Serve the demo upstream provider (OpenAI- and Anthropic-shaped). It is not a language "
        "model: it answers every request with a fixed demo sentence. Runs until killed."
    )
    # It touches neither the database nor the models: skip the checks for a fast start.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--latency-ms", type=float, default=0.0)
        parser.add_argument("--chunk-interval-ms", type=float, default=0.0)
        parser.add_argument("--completion-tokens", type=int, default=DemoConfig.completion_tokens)

    def handle(self, *args: Any, **options: Any) -> None:
        config = DemoConfig(
            latency_ms=options["latency_ms"],
            chunk_interval_ms=options["chunk_interval_ms"],
            completion_tokens=options["completion_tokens"],
        )
        host, port = options["host"], options["port"]

        def announce(_message: str) -> None:
            self.stdout.write(
                f"Demo upstream (deterministic text, not a language model) on "
                f"http://{host}:{port}/v1",
            )
            self.stdout.flush()

        run_demo_upstream(config, host=host, port=port, on_start=announce)
