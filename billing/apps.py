from django.apps import AppConfig

# Imported for its @register: the money settings' system checks (settings only, no models).
from billing import checks  # noqa: F401


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        pass  # noqa: F401  (registers the deployment checks)
