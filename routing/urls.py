from django.urls import path, re_path

from routing import openapi, providers_api, views

# [\s\S] rather than '.': ids may contain anything, newlines included, and must still reach
# an API view (a 404 in the API's error shape) rather than fall through to an HTML page.
urlpatterns = [
    path("chat/completions", views.chat_completions, name="chat-completions"),
    path("anthropic/v1/messages", views.anthropic_messages, name="anthropic-messages"),
    path("models", views.list_models, name="models"),
    re_path(r"^models/(?P<model_id>[\s\S]+)$", views.retrieve_model, name="model-detail"),
    path("generation/<str:generation_id>", views.generation_detail, name="generation-detail"),
    path("metrics/<str:generation_id>", views.generation_metrics, name="generation-metrics"),
    path("credits", views.credits, name="credits"),
    path("key", views.key_status, name="key"),
    path("providers", providers_api.list_providers, name="providers"),
    path("openapi.json", openapi.openapi_json, name="openapi"),
    re_path(r"^(?P<rest>[\s\S]*)$", views.api_not_found),
]
