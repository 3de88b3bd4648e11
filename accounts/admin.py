from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError

from accounts.models import (
    AppToken,
    Namespace,
    OAuthAccessToken,
    OAuthApplication,
    Robot,
    Team,
    TeamMember,
    User,
)
from accounts.services import superuser_user_update, user_namespace_ensure


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "is_robot", "is_superuser", "is_active", "date_joined")
    list_filter = ("is_robot", "is_superuser", "is_active")
    fieldsets = DjangoUserAdmin.fieldsets + (("Robot", {"fields": ("is_robot",)}),)
    search_fields = ("username", "email")
    actions = ["disable_users", "enable_users"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change and not obj.is_robot:
            # A person created here needs a namespace, as one created by sign-up does.
            user_namespace_ensure(user=obj)

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        # Through the service, one user at a time: each change is audited, and a superuser
        # cannot lock themselves out by selecting their own row.
        changed = 0
        for user in queryset:
            try:
                superuser_user_update(
                    user=user, actor=request.user, enabled=enabled, ip=request.META.get("REMOTE_ADDR")
                )
            except ValidationError as exc:
                self.message_user(request, f"{user.username}: {' '.join(exc.messages)}", messages.ERROR)
            else:
                changed += 1
        self.message_user(request, f"{'Enabled' if enabled else 'Disabled'} {changed} user(s).", messages.SUCCESS)

    @admin.action(description="Disable selected users (they can no longer sign in or push)")
    def disable_users(self, request, queryset):
        self._set_enabled(request, queryset, False)

    @admin.action(description="Enable selected users")
    def enable_users(self, request, queryset):
        self._set_enabled(request, queryset, True)


def window_label(seconds: int) -> str:
    """``2 weeks``, ``1 day``, ``0 seconds``: a time machine window as people say it."""
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


class NamespaceAdminForm(forms.ModelForm):
    """The time machine window is one of TAG_EXPIRATION_OPTIONS, as through the API."""

    time_machine_seconds = forms.TypedChoiceField(
        coerce=int,
        label="Time machine",
        help_text="How long deleted or moved tags stay restorable and keep their images.",
    )

    class Meta:
        model = Namespace
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        options = list(settings.TAG_EXPIRATION_OPTIONS)
        choices = [(seconds, window_label(seconds)) for seconds in options]
        current = self.instance.time_machine_seconds if self.instance.pk else None
        if current is not None and current not in options:
            # A window set before the options changed may stay, but cannot be chosen anew.
            choices.append((current, f"{window_label(current)} (no longer an option)"))
        self.fields["time_machine_seconds"].choices = choices
        if not self.instance.pk:
            self.fields["time_machine_seconds"].initial = Namespace._meta.get_field("time_machine_seconds").default


@admin.register(Namespace)
class NamespaceAdmin(admin.ModelAdmin):
    form = NamespaceAdminForm
    list_display = ("name", "kind", "user", "time_machine_seconds", "created")
    list_filter = ("kind",)
    search_fields = ("name", "email")
    raw_id_fields = ("user",)


class TeamMemberInline(admin.TabularInline):
    model = TeamMember
    raw_id_fields = ("user",)
    extra = 0


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "role")
    list_filter = ("role",)
    search_fields = ("name", "organization__name")
    inlines = [TeamMemberInline]


@admin.register(Robot)
class RobotAdmin(admin.ModelAdmin):
    list_display = ("user", "namespace", "description", "created")
    search_fields = ("user__username", "namespace__name", "description")
    # The encrypted token is never shown; regenerate it through the API or UI.
    exclude = ("token_encrypted",)
    raw_id_fields = ("user", "namespace")


@admin.register(AppToken)
class AppTokenAdmin(admin.ModelAdmin):
    list_display = ("title", "user", "created", "last_accessed", "expiration")
    search_fields = ("title", "user__username")
    exclude = ("token_hash",)
    readonly_fields = ("token_prefix",)
    raw_id_fields = ("user",)


@admin.register(OAuthApplication)
class OAuthApplicationAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "client_id", "created")
    search_fields = ("name", "organization__name", "client_id")
    exclude = ("client_secret_encrypted",)
    raw_id_fields = ("organization",)


@admin.register(OAuthAccessToken)
class OAuthAccessTokenAdmin(admin.ModelAdmin):
    list_display = ("user", "application", "scopes", "created", "expires")
    search_fields = ("user__username", "application__name")
    exclude = ("token_hash",)
    readonly_fields = ("token_prefix",)
    raw_id_fields = ("user", "application")
