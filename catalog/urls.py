from django.urls import path

from catalog import views

app_name = "catalog"

urlpatterns = [
    path("", views.home, name="home"),
    path("models", views.model_list, name="models"),
    path("models/<path:model_id>", views.model_detail, name="model"),
    path("providers/<slug:provider_id>", views.provider_detail, name="provider"),
]
