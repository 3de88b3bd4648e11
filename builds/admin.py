"""Builds in the superuser panel: the build switch and secret, builds, connected workers.

"Enable Dockerfile Build" lives on the one BuildSettings row. The registration secret is
write-only here: typed into a password field, stored encrypted, never shown again.
"""

from django import forms
from django.contrib import admin
from django.db.models import Prefetch
from django.shortcuts import redirect
from django.urls import reverse

from builds import selectors, services
from builds.errors import BuildError
from builds.models import FINAL_PHASES, Build, BuildSettings, BuildWorker


class BuildSettingsForm(forms.ModelForm):
    registration_secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Build workers present this to register. Leave empty to keep the current one.",
    )
    remove_registration_secret = forms.BooleanField(
        required=False, help_text="Remove the stored secret (no worker can register until one is set)."
    )

    class Meta:
        model = BuildSettings
        fields = ("enabled", "max_queued_per_namespace")

    def clean_max_queued_per_namespace(self):
        value = self.cleaned_data["max_queued_per_namespace"]
        if value < 1:
            raise forms.ValidationError("The queue limit must be at least 1")
        return value


@admin.register(BuildSettings)
class BuildSettingsAdmin(admin.ModelAdmin):
    form = BuildSettingsForm
    list_display = ("__str__", "enabled", "max_queued_per_namespace", "updated")
    readonly_fields = ("in_force", "secret_state", "updated")
    fields = (
        "in_force",
        "enabled",
        "secret_state",
        "registration_secret",
        "remove_registration_secret",
        "max_queued_per_namespace",
        "updated",
    )

    # One row: the list goes straight to it, and it can be neither added twice nor deleted.
    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        row, _ = BuildSettings.objects.get_or_create(pk=1)
        return redirect(reverse("admin:builds_buildsettings_change", args=[row.pk]))

    @admin.display(description="In force")
    def in_force(self, obj):
        effective = selectors.build_settings()
        state = "on" if effective.enabled else "off"
        source = "set by FEATURE_BUILD_SUPPORT in the environment" if effective.enabled_from_environment else "set here"
        return f"Dockerfile builds are {state} ({source})"

    @admin.display(description="Registration secret")
    def secret_state(self, obj):
        effective = selectors.build_settings()
        if effective.secret_from_environment:
            return "Set by BUILDER_REGISTRATION_SECRET in the environment (wins over a secret set here)"
        return "Set" if obj is not None and obj.registration_secret_encrypted else "Not set"

    def save_model(self, request, obj, form, change):
        secret = form.cleaned_data.get("registration_secret") or None
        if form.cleaned_data.get("remove_registration_secret"):
            secret = ""
        try:
            services.build_settings_update(
                enabled=form.cleaned_data["enabled"],
                registration_secret=secret,
                max_queued_per_namespace=form.cleaned_data["max_queued_per_namespace"],
            )
        except BuildError as exc:
            self.message_user(request, str(exc), level="error")
        obj.refresh_from_db()


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the build manager owns: shown, never edited here."""

    def get_readonly_fields(self, request, obj=None):
        excluded = set(self.exclude or ())
        return [f.name for f in self.model._meta.fields if f.name not in excluded]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Build)
class BuildAdmin(ReadOnlyAdmin):
    list_display = ("uuid", "repository", "phase", "tag_list", "worker", "created", "started", "completed")
    list_filter = ("phase", "source")
    search_fields = ("uuid", "repository__name", "repository__namespace__name", "display_name")
    list_select_related = ("repository__namespace", "worker")
    exclude = ("access_token",)

    @admin.display(description="Tags")
    def tag_list(self, obj):
        return ", ".join(obj.tags or [])


@admin.register(BuildWorker)
class BuildWorkerAdmin(ReadOnlyAdmin):
    list_display = ("host", "version", "state", "current_build", "last_heartbeat", "connected", "remote_addr")
    list_filter = ("state",)
    search_fields = ("host", "uuid", "remote_addr")
    exclude = ("channel_name",)

    def get_queryset(self, request):
        running = Build.objects.exclude(phase__in=FINAL_PHASES).select_related("repository__namespace")
        return super().get_queryset(request).prefetch_related(Prefetch("builds", queryset=running, to_attr="running"))

    @admin.display(description="Current build")
    def current_build(self, obj):
        running = getattr(obj, "running", None)
        if running is None:
            running = list(obj.builds.exclude(phase__in=FINAL_PHASES))
        return ", ".join(f"{build.repository} ({build.phase})" for build in running) or "-"
