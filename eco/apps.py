from django.apps import AppConfig


class EcoConfig(AppConfig):
    name = "eco"
