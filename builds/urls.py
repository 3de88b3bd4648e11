"""Build package transfer routes outside /api/v1 (see builds/views.py)."""

from django.urls import path

from builds import views

urlpatterns = [
    path("filedrop/<str:file_id>", views.PackageUploadView.as_view(), name="build-package-upload"),
    path("buildpack/<str:build_uuid>", views.build_package_download, name="build-package-download"),
]
