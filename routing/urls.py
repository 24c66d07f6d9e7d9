from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from routing import openapi, providers_api, views

# The API authenticates by key, never by cookie, so CSRF protection has nothing to protect
# here, for every view of it; left on, it answered any method other than GET with Django's
# HTML 403 page instead of the API's own answer in its error shape.
_api = csrf_exempt

# [\s\S] rather than '.': ids may contain anything, newlines included, and must still reach
# an API view (a 404 in the API's error shape) rather than fall through to an HTML page.
urlpatterns = [
    path("chat/completions", _api(views.chat_completions), name="chat-completions"),
    path("anthropic/v1/messages", _api(views.anthropic_messages), name="anthropic-messages"),
    path("models", _api(views.list_models), name="models"),
    re_path(r"^models/(?P<model_id>[\s\S]+)$", _api(views.retrieve_model), name="model-detail"),
    path(
        "generation/<str:generation_id>",
        _api(views.generation_detail),
        name="generation-detail",
    ),
    path(
        "metrics/<str:generation_id>",
        _api(views.generation_metrics),
        name="generation-metrics",
    ),
    path("credits", _api(views.credits), name="credits"),
    path("key", _api(views.key_status), name="key"),
    path("providers", _api(providers_api.list_providers), name="providers"),
    path("openapi.json", _api(openapi.openapi_json), name="openapi"),
    re_path(r"^(?P<rest>[\s\S]*)$", _api(views.api_not_found)),
]
