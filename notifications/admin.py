"""Notifications in Django admin: rules (without their secrets), the delivery log, the bell."""

from django.contrib import admin

from notifications.models import (
    AuthorizedEmail,
    Delivery,
    DeliveryAttempt,
    NotificationEvent,
    RepositoryNotification,
    UserNotification,
)


@admin.register(RepositoryNotification)
class RepositoryNotificationAdmin(admin.ModelAdmin):
    list_display = ("uuid", "repository", "event", "method", "title", "enabled", "number_of_failures", "created")
    list_filter = ("event", "method", "enabled")
    search_fields = ("title", "repository__name", "repository__namespace__name")
    raw_id_fields = ("repository",)
    # The encrypted secrets are neither shown nor editable here.
    exclude = ("secrets_encrypted",)
    readonly_fields = ("uuid", "created", "disabled_at")


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ("number", "started", "duration_ms", "success", "status_code", "error", "response_excerpt")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("uuid", "notification", "state", "attempts", "last_status_code", "next_attempt_at", "created")
    list_filter = ("state", "is_test")
    raw_id_fields = ("event", "notification")
    readonly_fields = ("uuid", "lease_token", "lease_expires", "created")
    inlines = [DeliveryAttemptInline]


@admin.register(NotificationEvent)
class NotificationEventAdmin(admin.ModelAdmin):
    list_display = ("uuid", "kind", "repository", "created")
    list_filter = ("kind",)
    raw_id_fields = ("repository",)


@admin.register(UserNotification)
class UserNotificationAdmin(admin.ModelAdmin):
    list_display = ("uuid", "user", "kind", "dismissed", "created")
    list_filter = ("kind", "dismissed")
    raw_id_fields = ("user", "organization", "repository", "delivery")


@admin.register(AuthorizedEmail)
class AuthorizedEmailAdmin(admin.ModelAdmin):
    list_display = ("email", "repository", "confirmed", "created", "confirmed_at")
    list_filter = ("confirmed",)
    raw_id_fields = ("repository",)
    exclude = ("code_hash",)
