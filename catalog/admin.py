"""Operator admin for the catalogue.

Every write here ends with ``mark_catalog_changed()`` (on commit), so a change made in the admin
reaches every gateway process within the snapshot's check interval. Provider credentials are
write-only: the form takes a new value and stores it encrypted; nothing ever renders it back.
"""

from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils import timezone

from catalog import fx, price_changes
from catalog.credentials import resolve_credential, set_credential
from catalog.models import (
    FeeChangeStatus,
    FxIngestRun,
    FxRate,
    Model,
    Offering,
    PlatformFeeChange,
    PriceChange,
    PriceChangeStatus,
    Provider,
    ProviderStatus,
)
from catalog.snapshot import mark_catalog_changed
from lowrouter.admin_permissions import require_permission


def _changed_on_commit() -> None:
    transaction.on_commit(mark_catalog_changed)


def _log_each(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, message: str
) -> None:
    """The admin's history entry, with the operator as actor, for each object an action
    changes (Django records saves and deletes itself, not actions)."""
    for obj in queryset:
        modeladmin.log_change(request, obj, message)


class CatalogWriteMixin:
    """Bump the catalogue version after every admin write (saves, inlines, deletes)."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)  # type: ignore[misc]
        _changed_on_commit()

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        repriced = [
            f.instance
            for f in formset.forms
            if f.instance.pk
            and isinstance(f.instance, Offering)
            and f.has_changed()
            and set(f.changed_data) & set(price_changes.PRICE_FIELDS)
        ]
        old = {o.pk: Offering.objects.get(pk=o.pk) for o in repriced}
        super().save_formset(request, form, formset, change)  # type: ignore[misc]
        for offering in repriced:
            price_changes.record_admin_price(
                offering=offering, before=old[offering.pk], by=request.user.get_username()
            )
        _changed_on_commit()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)  # type: ignore[misc]
        _changed_on_commit()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        super().delete_queryset(request, queryset)  # type: ignore[misc]
        _changed_on_commit()


class ProviderForm(ModelForm):
    # Never pre-filled (render_value=False): the stored secret cannot leak into the page.
    credential = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the stored key. Prefer credential_env: the secret then "
        "never touches the database.",
    )
    clear_credential = forms.BooleanField(required=False, help_text="Remove the stored key.")

    class Meta:
        model = Provider
        fields = [
            "id",
            "name",
            "wire_format",
            "output_bound_field",
            "base_url",
            "credential_env",
            "requires_credential",
            "billing_currency",
            "status",
            "data_handling",
            "is_demo",
            "price_list_url",
        ]

    def save(self, commit: bool = True) -> Provider:
        provider = super().save(commit=False)
        if self.cleaned_data.get("clear_credential"):
            set_credential(provider, "")
        elif self.cleaned_data.get("credential"):
            set_credential(provider, self.cleaned_data["credential"])
        if commit:
            provider.save()
        return provider


class OfferingInline(admin.TabularInline):
    model = Offering
    extra = 0
    fields = [
        "model",
        "provider",
        "region",
        "upstream_model",
        "prompt_price",
        "completion_price",
        "cached_prompt_price",
        "enabled",
    ]
    autocomplete_fields = ["model"]


@admin.register(Provider)
class ProviderAdmin(CatalogWriteMixin, admin.ModelAdmin):
    form = ProviderForm
    list_display = [
        "id",
        "name",
        "wire_format",
        "billing_currency",
        "status",
        "credential_configured",
        "is_demo",
    ]
    list_filter = ["status", "billing_currency", "wire_format"]
    search_fields = ["id", "name"]
    readonly_fields = ["credential_configured", "updated_at"]
    inlines = [OfferingInline]
    actions = ["soft_disable", "enable"]

    @admin.display(boolean=True, description="credential set")
    def credential_configured(self, obj: Provider) -> bool:
        return bool(resolve_credential(obj)) or not obj.requires_credential

    @admin.action(description="Soft-disable (listed, not routable)")
    @require_permission("catalog.change_provider")
    def soft_disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        _log_each(self, request, queryset, "Soft-disabled (action).")
        n = queryset.update(status=ProviderStatus.UNAVAILABLE)
        _changed_on_commit()
        self.message_user(request, f"{n} provider(s) soft-disabled.")

    @admin.action(description="Enable")
    @require_permission("catalog.change_provider")
    def enable(self, request: HttpRequest, queryset: QuerySet) -> None:
        _log_each(self, request, queryset, "Enabled (action).")
        n = queryset.update(status=ProviderStatus.OK)
        _changed_on_commit()
        self.message_user(request, f"{n} provider(s) enabled.")


@admin.register(Model)
class ModelAdmin(CatalogWriteMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "display_name",
        "owner",
        "context_window",
        "active_params_b",
        "params_accuracy",
        "platform_fee_per_1m",
        "lifecycle",
        "sunset_at",
    ]
    list_filter = ["lifecycle", "params_accuracy", "owner"]
    search_fields = ["id", "display_name", "owner"]
    inlines = [OfferingInline]

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        new_fee = obj.platform_fee_per_1m
        if change and "platform_fee_per_1m" in form.changed_data:
            # A fee change goes through the schedule: decreases apply now, increases wait out
            # the notice period and are announced to the accounts that used the model.
            obj.platform_fee_per_1m = form.initial["platform_fee_per_1m"]
            super().save_model(request, obj, form, change)
            if price_changes.propose_platform_fee(model=obj, new_fee=new_fee, source="admin"):
                self.message_user(
                    request,
                    "The fee increase is scheduled (see Platform fee changes) and announced.",
                    messages.WARNING,
                )
            return
        super().save_model(request, obj, form, change)


@admin.register(Offering)
class OfferingAdmin(CatalogWriteMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "upstream_model",
        "prompt_price",
        "completion_price",
        "cached_prompt_price",
        "enabled",
    ]
    list_filter = ["enabled", "provider", "region"]
    search_fields = ["model__id", "upstream_model"]
    actions = ["soft_disable", "enable"]

    def save_model(self, request: HttpRequest, obj: Offering, form: Any, change: bool) -> None:
        before = Offering.objects.get(pk=obj.pk) if change else None
        super().save_model(request, obj, form, change)
        if before is None:
            price_changes.record_initial_price(
                offering=obj, source=f"admin:{request.user.get_username()}"
            )
        elif set(form.changed_data) & set(price_changes.PRICE_FIELDS):
            price_changes.record_admin_price(
                offering=obj, before=before, by=request.user.get_username()
            )

    @admin.action(description="Soft-disable offerings")
    @require_permission("catalog.change_offering")
    def soft_disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        _log_each(self, request, queryset, "Soft-disabled (action).")
        n = queryset.update(enabled=False)
        _changed_on_commit()
        self.message_user(request, f"{n} offering(s) disabled.")

    @admin.action(description="Enable offerings")
    @require_permission("catalog.change_offering")
    def enable(self, request: HttpRequest, queryset: QuerySet) -> None:
        _log_each(self, request, queryset, "Enabled (action).")
        n = queryset.update(enabled=True)
        _changed_on_commit()
        self.message_user(request, f"{n} offering(s) enabled.")


@admin.register(PriceChange)
class PriceChangeAdmin(admin.ModelAdmin):
    list_display = [
        "offering",
        "status",
        "old_prompt_price",
        "prompt_price",
        "old_completion_price",
        "completion_price",
        "reason",
        "source",
        "created_at",
        "effective_at",
        "decided_by",
    ]
    list_filter = ["status"]
    actions = ["approve", "reject"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # The change permission is the one to decide on a proposed price; the admin's change form
    # stays closed (has_change_permission), since a decision goes through catalog.price_changes.
    @admin.action(description="Approve selected price changes")
    @require_permission("catalog.change_pricechange")
    def approve(self, request: HttpRequest, queryset: QuerySet) -> None:
        who = request.user.get_username()
        n = sum(
            price_changes.approve_price_change(change_id=pk, by=who)
            for pk in queryset.filter(status=PriceChangeStatus.PENDING).values_list("pk", flat=True)
        )
        self.message_user(request, f"{n} price change(s) applied.")

    @admin.action(description="Reject selected price changes")
    @require_permission("catalog.change_pricechange")
    def reject(self, request: HttpRequest, queryset: QuerySet) -> None:
        who = request.user.get_username()
        n = sum(
            price_changes.reject_price_change(change_id=pk, by=who)
            for pk in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"{n} price change(s) rejected.")


class PlatformFeeChangeForm(ModelForm):
    class Meta:
        model = PlatformFeeChange
        fields = ["model", "new_fee", "effective_at"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        model, new_fee, when = data.get("model"), data.get("new_fee"), data.get("effective_at")
        if model and new_fee is not None and when:
            days = settings.LOWROUTER_FEE_NOTICE_DAYS
            if new_fee > model.platform_fee_per_1m and when < timezone.now() + timedelta(days=days):
                self.add_error(
                    "effective_at", f"A fee increase needs at least {days} days' notice."
                )
        return data


@admin.register(PlatformFeeChange)
class PlatformFeeChangeAdmin(admin.ModelAdmin):
    form = PlatformFeeChangeForm
    list_display = [
        "model",
        "old_fee",
        "new_fee",
        "effective_at",
        "status",
        "announced_at",
        "announced_to",
    ]
    list_filter = ["status"]
    actions = ["cancel"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A scheduled change is never edited (cancel it and schedule another).
        return obj is None and super().has_change_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: PlatformFeeChange, form: Any, change: bool
    ) -> None:
        scheduled = price_changes.schedule_platform_fee(
            model=obj.model,
            new_fee=obj.new_fee,
            effective_at=obj.effective_at,
            source=f"admin:{request.user.get_username()}",
        )
        obj.pk = scheduled.pk

    @admin.action(description="Cancel scheduled fee changes")
    @require_permission("catalog.change_platformfeechange")
    def cancel(self, request: HttpRequest, queryset: QuerySet) -> None:
        scheduled = queryset.filter(status=FeeChangeStatus.SCHEDULED)
        _log_each(self, request, scheduled, "Cancelled (action).")
        n = scheduled.update(status=FeeChangeStatus.CANCELLED)
        self.message_user(request, f"{n} fee change(s) cancelled.")


@admin.register(FxRate)
class FxRateAdmin(admin.ModelAdmin):
    list_display = ["ecb_date", "currency", "quote", "fetched_at"]
    list_filter = ["currency"]
    date_hierarchy = "ecb_date"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(FxIngestRun)
class FxIngestRunAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "ok",
        "newest_ecb_date",
        "rates_stored",
        "stale_currencies",
        "source_url",
        "error",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# The FX_INGEST_STALE banner: every admin page builds its context through each_context, so a
# warning message added there shows at the top of every page while the alert is raised, with
# no template override (django.contrib.admin's templates win over this app's).
_each_context = admin.site.each_context


def _each_context_with_fx_alert(request: HttpRequest) -> dict[str, Any]:
    context = _each_context(request)
    if getattr(request, "_fx_alert_shown", False) or not request.user.is_active:
        return context
    if request.user.is_staff:
        alert = fx.current_alert()
        if alert:
            messages.error(request, alert)
        request._fx_alert_shown = True  # type: ignore[attr-defined]
    return context


admin.site.each_context = _each_context_with_fx_alert  # type: ignore[method-assign]
