from django.apps import AppConfig


class DocsSiteConfig(AppConfig):
    name = "docs_site"
