"""Scanning in Django admin: imports (with the OSV upload, superusers only), advisories, scans."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from scanning import services
from scanning.models import Advisory, AdvisoryImport, LayerIndex, ManifestScan

UPLOAD_MAX_BYTES = 512 * 1024 * 1024


class OsvUploadForm(forms.Form):
    file = forms.FileField(help_text="An OSV advisory (.json) or an OSV archive (.zip)")

    def clean_file(self):
        uploaded = self.cleaned_data["file"]
        if not uploaded.name.lower().endswith((".json", ".zip")):
            raise forms.ValidationError("Upload a .json advisory or a .zip archive of advisories.")
        if uploaded.size > UPLOAD_MAX_BYTES:
            raise forms.ValidationError(f"The file is over {UPLOAD_MAX_BYTES // (1024 * 1024)} MiB.")
        return uploaded


@admin.register(AdvisoryImport)
class AdvisoryImportAdmin(admin.ModelAdmin):
    list_display = (
        "source",
        "state",
        "advisories_read",
        "advisories_imported",
        "advisories_unchanged",
        "rejected_count",
        "findings_added",
        "events_emitted",
        "started",
        "finished",
    )
    list_filter = ("state",)
    readonly_fields = [f.name for f in AdvisoryImport._meta.fields]

    def has_add_permission(self, request):
        return False  # imports come from the upload or the command

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="rejected")
    def rejected_count(self, obj):
        return len(obj.rejected)

    def get_urls(self):
        return [
            path("upload/", self.admin_site.admin_view(self.upload_view), name="scanning_advisoryimport_upload"),
            *super().get_urls(),
        ]

    def upload_view(self, request):
        if not request.user.is_superuser:
            raise PermissionDenied
        form = OsvUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            uploaded = form.cleaned_data["file"]
            record = services.advisory_upload_queue(uploaded=uploaded, name=uploaded.name)
            messages.success(request, f"{uploaded.name} is queued for import (import #{record.pk}).")
            return redirect(reverse("admin:scanning_advisoryimport_changelist"))
        context = {**self.admin_site.each_context(request), "form": form, "title": "Upload OSV data"}
        return TemplateResponse(request, "admin/scanning/advisoryimport/upload.html", context)


@admin.register(Advisory)
class AdvisoryAdmin(admin.ModelAdmin):
    list_display = ("osv_id", "severity", "cvss_score", "modified", "withdrawn", "imported")
    list_filter = ("severity",)
    search_fields = ("osv_id", "summary")

    def has_add_permission(self, request):
        return False


@admin.register(ManifestScan)
class ManifestScanAdmin(admin.ModelAdmin):
    list_display = ("manifest", "status", "ecosystem", "queued", "indexed", "matched")
    list_filter = ("status",)
    raw_id_fields = ("manifest",)
    readonly_fields = ("summary", "error")


@admin.register(LayerIndex)
class LayerIndexAdmin(admin.ModelAdmin):
    list_display = ("digest", "state", "indexed")
    list_filter = ("state",)
    search_fields = ("digest",)
