from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    """Tools for development, tests and benchmarks (the demo upstream); nothing imports them."""

    name = "devtools"
