from django.urls import path

from observability import views

urlpatterns = [
    # Quay's paths.
    path("health/instance", views.health_instance, name="health-instance"),
    path("health/endtoend", views.health_endtoend, name="health-endtoend"),
    path("metrics", views.metrics, name="metrics"),
]
