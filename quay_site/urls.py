from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("v2/", include("registry.api.urls")),
    path("admin/", admin.site.urls),
]
