"""Build triggers in Django admin: a read-only list (keys and secrets are never shown), and the
git providers' OAuth applications the superuser enters (guide chapters 7 and 9)."""

from django import forms
from django.contrib import admin
from django.utils.html import format_html

from triggers import services
from triggers.models import BuildTrigger, ProviderApp


@admin.register(BuildTrigger)
class BuildTriggerAdmin(admin.ModelAdmin):
    list_display = (
        "uuid",
        "repository",
        "service",
        "enabled",
        "disabled_reason",
        "successive_failure_count",
        "successive_internal_error_count",
        "activated",
        "created",
    )
    list_filter = ("service", "enabled", "disabled_reason")
    search_fields = ("uuid", "repository__name", "repository__namespace__name")
    list_select_related = ("repository__namespace",)
    # The encrypted private key, the webhook secret (hash and encrypted copy) and the provider
    # token stay out of the page; the public key is what the admin installs anyway.
    fields = (
        "uuid",
        "repository",
        "service",
        "enabled",
        "disabled_reason",
        "disabled_at",
        "connected_user",
        "pull_robot",
        "config",
        "public_key",
        # What exists at the provider (deploy key and hook ids): what to remove by hand if a
        # forced deletion could not.
        "remote",
        "successive_failure_count",
        "successive_internal_error_count",
        "activated",
        "created",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ProviderAppForm(forms.ModelForm):
    """The client secret is write-only: typed in to set or replace it, never shown back."""

    client_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the stored secret",
    )
    web_url = forms.URLField(
        required=False, max_length=512, assume_scheme="https", help_text="Blank: the public service"
    )
    api_url = forms.URLField(
        required=False, max_length=512, assume_scheme="https", help_text="Blank: derived from the web URL"
    )

    class Meta:
        model = ProviderApp
        fields = ("service", "enabled", "client_id", "web_url", "api_url")

    def clean(self):
        data = super().clean()
        service = data.get("service") or (self.instance.service if self.instance.pk else None)
        has_secret = bool(data.get("client_secret")) or bool(self.instance.client_secret_encrypted)
        if data.get("enabled") and not (data.get("client_id") and has_secret):
            raise forms.ValidationError("An enabled provider needs its OAuth client id and client secret")
        if service and not self.errors:
            # The same checks the service makes when saving (URLs the outbound guard accepts).
            from quay_site import outbound

            for name in ("web_url", "api_url"):
                if data.get(name):
                    try:
                        outbound.check_url(data[name])
                    except outbound.DestinationRefused as exc:
                        self.add_error(name, str(exc))
        return data


@admin.register(ProviderApp)
class ProviderAppAdmin(admin.ModelAdmin):
    form = ProviderAppForm
    list_display = ("service", "enabled", "client_id", "web_url", "api_url", "updated")
    readonly_fields = ("callback_url", "has_client_secret", "updated")
    fields = (
        "service",
        "enabled",
        "client_id",
        "client_secret",
        "has_client_secret",
        "web_url",
        "api_url",
        "callback_url",
        "updated",
    )

    def get_readonly_fields(self, request, obj=None):
        # The service names the row: fixed once created.
        return (*self.readonly_fields, "service") if obj is not None else self.readonly_fields

    @admin.display(description="Client secret stored")
    def has_client_secret(self, obj) -> bool:
        return bool(obj and obj.client_secret_encrypted)

    @admin.display(description="Authorization callback URL")
    def callback_url(self, obj):
        if obj is None or not obj.service:
            return "Shown once the provider is saved"
        return format_html("<code>{}</code>", services.oauth_redirect_uri(obj.service))

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved = services.provider_app_set(
            service=obj.service,
            enabled=data.get("enabled", False),
            client_id=data.get("client_id", ""),
            client_secret=data.get("client_secret") or None,
            web_url=data.get("web_url", ""),
            api_url=data.get("api_url", ""),
        )
        obj.pk = saved.pk
        obj.client_secret_encrypted = saved.client_secret_encrypted
