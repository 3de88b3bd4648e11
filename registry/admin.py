from django.contrib import admin

from registry.models import (
    Blob,
    Manifest,
    Repository,
    RepositoryAccessToken,
    RepositoryBlob,
    RepositoryPermission,
    Tag,
    UploadSession,
    UsageLog,
)


class PermissionInline(admin.TabularInline):
    model = RepositoryPermission
    raw_id_fields = ("user", "team")
    extra = 0


@admin.register(Repository)
class RepositoryAdmin(admin.ModelAdmin):
    list_display = ("__str__", "visibility", "kind", "state", "last_modified")
    list_filter = ("visibility", "kind", "state")
    search_fields = ("name", "namespace__name", "description")
    raw_id_fields = ("namespace",)
    inlines = [PermissionInline]


@admin.register(RepositoryPermission)
class RepositoryPermissionAdmin(admin.ModelAdmin):
    list_display = ("repository", "user", "team", "role")
    list_filter = ("role",)
    search_fields = ("repository__name", "user__username", "team__name")
    raw_id_fields = ("repository", "user", "team")


@admin.register(RepositoryAccessToken)
class RepositoryAccessTokenAdmin(admin.ModelAdmin):
    list_display = ("friendly_name", "repository", "role", "created", "expiration")
    list_filter = ("role",)
    search_fields = ("friendly_name", "repository__name")
    exclude = ("code_hash",)
    readonly_fields = ("code_prefix",)
    raw_id_fields = ("repository",)


@admin.register(Blob)
class BlobAdmin(admin.ModelAdmin):
    list_display = ("digest", "size", "created")
    search_fields = ("digest",)
    date_hierarchy = "created"


@admin.register(RepositoryBlob)
class RepositoryBlobAdmin(admin.ModelAdmin):
    list_display = ("repository", "blob", "linked")
    search_fields = ("repository__name", "blob__digest")
    raw_id_fields = ("repository", "blob")


@admin.register(Manifest)
class ManifestAdmin(admin.ModelAdmin):
    list_display = ("digest", "repository", "media_type", "artifact_type", "size", "created")
    list_filter = ("media_type",)
    search_fields = ("digest", "repository__name", "subject_digest")
    exclude = ("raw",)
    readonly_fields = ("digest", "media_type", "size", "config_digest", "subject_digest")
    raw_id_fields = ("repository",)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "repository", "manifest", "lifetime_start", "lifetime_end", "expiration", "hidden")
    list_filter = ("hidden", "reversion")
    search_fields = ("name", "repository__name", "manifest__digest")
    raw_id_fields = ("repository", "manifest")


@admin.register(UploadSession)
class UploadSessionAdmin(admin.ModelAdmin):
    list_display = ("uuid", "repository", "owner", "offset", "started", "expires")
    search_fields = ("repository__name", "owner")
    raw_id_fields = ("repository",)


@admin.register(UsageLog)
class UsageLogAdmin(admin.ModelAdmin):
    list_display = ("created", "kind", "actor_name", "repository", "ip")
    list_filter = ("kind",)
    search_fields = ("actor_name", "repository__name", "ip")
    date_hierarchy = "created"
    raw_id_fields = ("actor", "namespace", "repository")
