import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lowrouter.settings")

django_application = get_asgi_application()

# Imported after Django is set up: the chat endpoint uses the ORM and settings.
from routing.asgi_endpoint import ChatEndpoint  # noqa: E402

application = ChatEndpoint(django_application)
