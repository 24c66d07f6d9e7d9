from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from eco.estimate import mark_eco_changed
from eco.models import GridRegion, MethodologyVersion

# What a stored estimate was computed with must never change under it, so these fields are
# editable only while a version is being created.
FROZEN_FIELDS = (
    "version",
    "kind",
    "formula",
    "coefficients",
    "grid_dataset",
    "grid_source",
    "grid_year",
    "params_dataset_version",
    "effective_at",
)


@admin.register(MethodologyVersion)
class MethodologyVersionAdmin(admin.ModelAdmin):
    list_display = ("version", "kind", "grid_source", "grid_year", "effective_at", "is_current")
    actions = ["make_current"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: MethodologyVersion | None = None
    ) -> tuple[str, ...]:
        # is_current is switched only through the action, which swaps atomically.
        return ("is_current", *FROZEN_FIELDS) if obj else ("is_current",)

    def save_model(
        self, request: HttpRequest, obj: MethodologyVersion, form: Any, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        mark_eco_changed()

    def has_delete_permission(
        self, request: HttpRequest, obj: MethodologyVersion | None = None
    ) -> bool:
        return False

    # Django's own action permission (eco.change_methodologyversion), not
    # lowrouter.admin_permissions: eco imports none of the project's other packages.
    @admin.action(
        description="Make the selected version current for new requests", permissions=["change"]
    )
    def make_current(self, request: HttpRequest, queryset: QuerySet[MethodologyVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        version = queryset.get()
        version.make_current()
        mark_eco_changed()
        self.log_change(request, version, "Made current (action).")
        self.message_user(
            request,
            f"{version.version} is now current; web processes pick it up when they reload "
            "their eco context. Earlier estimates keep the version they were made with.",
        )


@admin.register(GridRegion)
class GridRegionAdmin(admin.ModelAdmin):
    list_display = ("code", "label", "g_per_kwh", "data_year", "accuracy", "updated_at")

    def save_model(self, request: HttpRequest, obj: GridRegion, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        mark_eco_changed()

    def delete_model(self, request: HttpRequest, obj: GridRegion) -> None:
        super().delete_model(request, obj)
        mark_eco_changed()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[GridRegion]) -> None:
        super().delete_queryset(request, queryset)
        mark_eco_changed()
