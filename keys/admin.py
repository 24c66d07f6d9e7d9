from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.http import signed_in_user
from keys.actions import POLICY_FIELDS, create_key, revoke_key, update_key
from keys.models import ApiKey
from lowrouter.admin_permissions import require_permission


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created, edited and revoked through keys.actions, so every change is audited.
    The token is shown once, in the message after creation; only its digest is stored."""

    list_display = ["name", "account", "display_token", "region", "enabled", "revoked_at"]
    list_filter = ["enabled", "region"]
    search_fields = ["name", "account__email", "prefix"]
    fields = ["account", *POLICY_FIELDS, "display_token", "created_at", "revoked_at"]
    readonly_fields = ["display_token", "created_at", "revoked_at"]
    autocomplete_fields = ["account"]
    actions = ["revoke"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        if not change:
            key, token = create_key(
                account=obj.account,
                **{f: form.cleaned_data.get(f) for f in POLICY_FIELDS},
                actor=signed_in_user(request),
            )
            obj.pk = key.pk
            messages.warning(request, f"New key token (shown once, copy it now): {token}")
            return
        update_key(
            ApiKey.objects.get(pk=obj.pk),
            actor=signed_in_user(request),
            **{f: form.cleaned_data[f] for f in form.changed_data if f in POLICY_FIELDS},
        )

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False  # revoke instead: usage history keeps pointing at the key

    @admin.action(description="Revoke selected keys (final)")
    @require_permission("keys.change_apikey")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            revoke_key(key, actor=signed_in_user(request))
        messages.success(request, f"Revoked {queryset.count()} key(s).")
