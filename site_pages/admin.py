from django.contrib import admin

from site_pages.models import ChangelogEntry, Incident


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["title", "severity", "started_at", "resolved_at"]
    list_filter = ["severity"]
    search_fields = ["title"]


@admin.register(ChangelogEntry)
class ChangelogEntryAdmin(admin.ModelAdmin):
    list_display = ["date", "kind", "title"]
    list_filter = ["kind"]
    search_fields = ["title", "body"]
