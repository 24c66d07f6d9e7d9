from django.urls import path, re_path

from routing import providers_api, views

urlpatterns = [
    path("chat/completions", views.chat_completions, name="chat-completions"),
    path("models", views.list_models, name="models"),
    re_path(r"^models/(?P<model_id>.+)$", views.retrieve_model, name="model-detail"),
    path("generation/<str:generation_id>", views.generation_detail, name="generation-detail"),
    path("metrics/<str:generation_id>", views.generation_metrics, name="generation-metrics"),
    path("credits", views.credits, name="credits"),
    path("key", views.key_status, name="key"),
    path("providers", providers_api.list_providers, name="providers"),
    re_path(r"^(?P<rest>.*)$", views.api_not_found),
]
