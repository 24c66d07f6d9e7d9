from django.urls import path

from console import views

app_name = "console"

urlpatterns = [
    path("dashboard", views.dashboard, name="dashboard"),
    path("dashboard/transactions/<str:generation_id>", views.transaction, name="transaction"),
    path("dashboard/export.csv", views.export_csv, name="export"),
    path("dashboard/credits", views.credits_page, name="credits"),
]
