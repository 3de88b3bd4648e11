"""Routes of the OCI distribution API. Repository names contain slashes, so the name is
matched lazily up to the first endpoint keyword; views validate it (NAME_INVALID)."""

from django.urls import re_path

from registry.api import views

NAME = r"(?P<name>.+?)"
DIGEST = r"(?P<digest>[^/]+)"

urlpatterns = [
    re_path(r"^$", views.BaseView.as_view(), name="v2-base"),
    re_path(r"^auth$", views.TokenView.as_view(), name="v2-auth"),
    re_path(r"^_catalog$", views.CatalogView.as_view(), name="v2-catalog"),
    re_path(rf"^{NAME}/tags/list$", views.TagsListView.as_view(), name="v2-tags"),
    re_path(rf"^{NAME}/manifests/(?P<reference>[^/]+)$", views.ManifestView.as_view(), name="v2-manifest"),
    re_path(rf"^{NAME}/blobs/uploads/?$", views.UploadStartView.as_view(), name="v2-upload-start"),
    re_path(rf"^{NAME}/blobs/uploads/(?P<upload_id>[^/]+)$", views.UploadView.as_view(), name="v2-upload"),
    re_path(rf"^{NAME}/blobs/{DIGEST}$", views.BlobView.as_view(), name="v2-blob"),
    re_path(rf"^{NAME}/referrers/{DIGEST}$", views.ReferrersView.as_view(), name="v2-referrers"),
]
