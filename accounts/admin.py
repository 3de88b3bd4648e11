from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

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
from accounts.services import user_namespace_ensure


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "is_robot", "is_superuser", "is_active", "date_joined")
    list_filter = ("is_robot", "is_superuser", "is_active")
    fieldsets = DjangoUserAdmin.fieldsets + (("Robot", {"fields": ("is_robot",)}),)
    search_fields = ("username", "email")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change and not obj.is_robot:
            # A person created here needs a namespace, as one created by sign-up does.
            user_namespace_ensure(user=obj)


@admin.register(Namespace)
class NamespaceAdmin(admin.ModelAdmin):
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
