from django.urls import path

from console import data, keys, routing, settings, views

app_name = "console"

urlpatterns = [
    path("dashboard", views.dashboard, name="dashboard"),
    path("dashboard/transactions/<str:generation_id>", views.transaction, name="transaction"),
    path("dashboard/export.csv", views.export_csv, name="export"),
    path("dashboard/credits", views.credits_page, name="credits"),
    path("dashboard/settings", settings.settings_page, name="settings"),
    path("dashboard/settings/audit", settings.audit_page, name="audit"),
    path("dashboard/settings/data", data.data_page, name="data"),
    path("dashboard/settings/data/export", data.data_export, name="data-export"),
    path("dashboard/settings/data/delete-usage", data.data_delete_usage, name="data-delete-usage"),
    path(
        "dashboard/settings/data/delete-account",
        data.data_delete_account,
        name="data-delete-account",
    ),
    path("dashboard/auto-routing", routing.auto_routing, name="auto-routing"),
    path("dashboard/keys", keys.key_list, name="keys"),
    path("dashboard/keys/<int:key_id>", keys.key_edit, name="key-edit"),
    path("dashboard/keys/<int:key_id>/toggle", keys.key_toggle, name="key-toggle"),
    path("dashboard/keys/<int:key_id>/revoke", keys.key_revoke, name="key-revoke"),
    path("dashboard/keys/<int:key_id>/rotate", keys.key_rotate, name="key-rotate"),
]
