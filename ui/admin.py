"""The superuser panel's branding and the site configuration (sign-up switch)."""

from django.contrib import admin
from django.shortcuts import redirect

from ui import services
from ui.models import SiteConfiguration

admin.site.site_header = "Registry superuser panel"
admin.site.site_title = "Registry superuser panel"
admin.site.index_title = "Users, organizations, repositories and settings"
# "View site" goes to the web UI's repository list.
admin.site.site_url = "/"


@admin.register(SiteConfiguration)
class SiteConfigurationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "user_creation_enabled", "updated", "updated_by")
    fields = ("user_creation_enabled", "updated", "updated_by")
    readonly_fields = ("updated", "updated_by")

    def has_add_permission(self, request):
        # One row: it is created on first save of the change page (see changelist_view).
        return not SiteConfiguration.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        # Only one object: go straight to its change page (creating it with the defaults).
        config, _ = SiteConfiguration.objects.get_or_create(pk=SiteConfiguration.SINGLETON_PK)
        return redirect("admin:ui_siteconfiguration_change", config.pk)

    def save_model(self, request, obj, form, change):
        services.site_configuration_update(actor=request.user, user_creation_enabled=obj.user_creation_enabled)
