"""The sign-up form: email, password and the country that decides the VAT of top-ups."""

from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.http import HttpRequest
from django_countries import countries

from accounts.models import BillingProfile, User


class SignupForm(AllauthSignupForm):
    country = forms.ChoiceField(
        choices=[("", "Choose your country")] + list(countries),
        help_text="Decides the VAT on your top-ups; you can change it later in the settings.",
    )

    def save(self, request: HttpRequest) -> User:
        user = super().save(request)
        BillingProfile.objects.update_or_create(
            account=user, defaults={"country": self.cleaned_data["country"]}
        )
        return user
