"""The sign-up forms (email and password, or a federated provider): both ask the country
that decides the VAT of top-ups."""

from allauth.account.forms import SignupForm as AllauthSignupForm
from allauth.socialaccount.forms import SignupForm as AllauthSocialSignupForm
from django import forms
from django.http import HttpRequest
from django_countries import countries

from accounts.models import BillingProfile, User


def country_field() -> forms.ChoiceField:
    return forms.ChoiceField(
        choices=[("", "Choose your country")] + list(countries),
        help_text="Decides the VAT on your top-ups; you can change it later in the settings.",
    )


class SavesCountry:
    """Sign-up forms with a ``country`` field: the country goes on the billing profile."""

    cleaned_data: dict

    def save(self, request: HttpRequest) -> User:
        user = super().save(request)  # type: ignore[misc]
        BillingProfile.objects.update_or_create(
            account=user, defaults={"country": self.cleaned_data["country"]}
        )
        return user


class SignupForm(SavesCountry, AllauthSignupForm):
    country = country_field()


class SocialSignupForm(SavesCountry, AllauthSocialSignupForm):
    country = country_field()
