from django.contrib import admin
from django.db import transaction

from squash import services
from squash.models import SquashedImage, SquashSettings


@admin.register(SquashedImage)
class SquashedImageAdmin(admin.ModelAdmin):
    """The cache of squashed downloads: what is stored, how big, how recently used. Deleting a
    row deletes its stored tarball; the next download squashes the image again."""

    list_display = ("repository", "tag", "platform", "state", "size", "flattenings", "created", "last_used")
    list_filter = ("state",)
    list_select_related = ("repository__namespace",)
    search_fields = ("repository__name", "repository__namespace__name", "tag", "manifest__digest")
    ordering = ("-last_used",)
    readonly_fields = [field.name for field in SquashedImage._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj) -> None:
        with transaction.atomic():
            services.squash_delete(row=obj)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            for row in queryset:
                services.squash_delete(row=row)


@admin.register(SquashSettings)
class SquashSettingsAdmin(admin.ModelAdmin):
    list_display = ("repository", "squash_at_push")
    list_select_related = ("repository__namespace",)
    raw_id_fields = ("repository",)
    search_fields = ("repository__name", "repository__namespace__name")
