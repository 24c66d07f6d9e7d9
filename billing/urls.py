from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("topup", views.topup, name="topup"),
    path("topup/confirm", views.topup_confirm, name="topup_confirm"),
    path("topup/done", views.topup_done, name="topup_done"),
    path("invoices", views.invoice_list, name="invoices"),
    path("invoices/<str:number>.pdf", views.invoice_pdf, name="invoice_pdf"),
    path("redeem", views.redeem, name="redeem"),
    path("stripe/webhook", views.stripe_webhook, name="stripe_webhook"),
]
