"""Quay-compatible /api/v1 endpoints for repositories, their permissions and usage logs."""

urlpatterns: list = []
