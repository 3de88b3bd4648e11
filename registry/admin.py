from django.contrib import admin, messages
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse

from registry import gc
from registry.models import (
    Blob,
    GarbageCollectionRun,
    Manifest,
    Repository,
    RepositoryAccessToken,
    RepositoryBlob,
    RepositoryPermission,
    Tag,
    UploadSession,
    UsageLog,
)
from registry.permissions import Principal
from registry.services import repository_set_visibility


class PermissionInline(admin.TabularInline):
    model = RepositoryPermission
    raw_id_fields = ("user", "team")
    extra = 0


@admin.register(Repository)
class RepositoryAdmin(admin.ModelAdmin):
    list_display = ("__str__", "visibility", "kind", "state", "last_modified")
    list_filter = ("visibility", "kind", "state", "namespace__kind")
    list_select_related = ("namespace",)
    search_fields = ("name", "namespace__name", "description")
    raw_id_fields = ("namespace",)
    inlines = [PermissionInline]
    actions = ["make_public", "make_private", "collect_garbage"]

    def _set_visibility(self, request, queryset, visibility: str) -> None:
        # Through the service so that each change lands in the repository's usage log.
        principal = Principal(kind="user", user=request.user)
        ip = request.META.get("REMOTE_ADDR")
        changed = 0
        for repository in queryset.select_related("namespace"):
            if repository.visibility != visibility:
                repository_set_visibility(repository=repository, visibility=visibility, principal=principal, ip=ip)
                changed += 1
        self.message_user(request, f"Made {changed} repositor{'y' if changed == 1 else 'ies'} {visibility}.")

    @admin.action(description="Make selected repositories public")
    def make_public(self, request, queryset):
        self._set_visibility(request, queryset, Repository.Visibility.PUBLIC)

    @admin.action(description="Make selected repositories private")
    def make_private(self, request, queryset):
        self._set_visibility(request, queryset, Repository.Visibility.PRIVATE)

    @admin.action(description="Collect garbage in selected repositories now")
    def collect_garbage(self, request, queryset):
        # A pass limited to one repository is small: run it here and report what it freed.
        freed = removed = 0
        for repository in queryset:
            run = gc.gc_run(trigger=GarbageCollectionRun.Trigger.ADMIN, repository=repository)
            if run.error:
                self.message_user(request, f"{repository}: garbage collection failed: {run.error}", messages.ERROR)
            freed += run.bytes_freed
            removed += run.manifests_deleted
        self.message_user(request, f"Removed {removed} manifest(s) and freed {freed} bytes.")


@admin.register(GarbageCollectionRun)
class GarbageCollectionRunAdmin(admin.ModelAdmin):
    """Past passes (read-only), and a button that queues a pass over the whole registry."""

    change_list_template = "admin/registry/garbagecollectionrun/change_list.html"
    list_display = (
        "started",
        "trigger",
        "repository",
        "finished",
        "tags_expired",
        "tags_dropped",
        "manifests_deleted",
        "blobs_deleted",
        "bytes_freed",
        "uploads_cleaned",
        "error",
    )
    list_filter = ("trigger",)
    date_hierarchy = "started"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_urls(self):
        run = self.admin_site.admin_view(self.run_now)
        return [path("run/", run, name="registry_garbagecollectionrun_run"), *super().get_urls()]

    def run_now(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        from registry.tasks import gc_requested

        # Queued: a pass over a large registry outlasts a page request; its row appears here.
        gc_requested.delay()
        self.message_user(request, "Garbage collection queued; its run appears in this list when it starts.")
        return HttpResponseRedirect(reverse("admin:registry_garbagecollectionrun_changelist"))


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
