"""Quay-compatible /api/v1 endpoints for repositories, their permissions and usage logs.

Repository paths contain slashes (``namespace/name/with/parts``), so ``apirepopath`` matches
lazily: a sub-resource route (``.../permissions/user/``, ``.../logs``) wins over the plain
repository route, which comes last and takes whatever is left. Other apps that add routes under
``repository/<apirepopath:repository>/...`` must be included before this module for the same
reason.
"""

from django.urls import path, register_converter

from registry.rest import discovery, logs, manifests, repo_permissions, repositories, tags


class RepositoryPathConverter:
    """``namespace/name``, where the name may have more ``/`` parts; views validate it."""

    regex = r"[^/]+/.+?"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(RepositoryPathConverter, "apirepopath")

REPO = "repository/<apirepopath:repository>"

urlpatterns = [
    path("discovery", discovery.DiscoveryView.as_view(), name="api-discovery"),
    path("repository", repositories.RepositoryListView.as_view(), name="api-repository-list"),
    path(f"{REPO}/changevisibility", repositories.RepositoryVisibilityView.as_view(), name="api-repository-visibility"),
    path(
        f"{REPO}/permissions/user/",
        repo_permissions.UserPermissionListView.as_view(),
        name="api-repository-user-permissions",
    ),
    path(
        f"{REPO}/permissions/user/<str:username>/transitive",
        repo_permissions.UserTransitivePermissionView.as_view(),
        name="api-repository-user-transitive-permission",
    ),
    path(
        f"{REPO}/permissions/user/<str:username>",
        repo_permissions.UserPermissionView.as_view(),
        name="api-repository-user-permission",
    ),
    path(
        f"{REPO}/permissions/team/",
        repo_permissions.TeamPermissionListView.as_view(),
        name="api-repository-team-permissions",
    ),
    path(
        f"{REPO}/permissions/team/<str:teamname>",
        repo_permissions.TeamPermissionView.as_view(),
        name="api-repository-team-permission",
    ),
    path(f"{REPO}/logs", logs.RepositoryLogsView.as_view(), name="api-repository-logs"),
    path(f"{REPO}/tag/", tags.TagListView.as_view(), name="api-repository-tags"),
    path(f"{REPO}/tag/<str:tag>/restore", tags.TagRestoreView.as_view(), name="api-repository-tag-restore"),
    path(f"{REPO}/tag/<str:tag>/expire", tags.TagExpireView.as_view(), name="api-repository-tag-expire"),
    path(f"{REPO}/tag/<str:tag>", tags.TagView.as_view(), name="api-repository-tag"),
    path(
        f"{REPO}/manifest/<str:manifestref>/labels",
        manifests.ManifestLabelsView.as_view(),
        name="api-repository-manifest-labels",
    ),
    path(f"{REPO}/manifest/<str:manifestref>", manifests.ManifestView.as_view(), name="api-repository-manifest"),
    path(f"{REPO}/aggregatelogs", logs.RepositoryAggregateLogsView.as_view(), name="api-repository-aggregatelogs"),
    path("user/starred", repositories.StarredRepositoryListView.as_view(), name="api-starred-list"),
    path("user/starred/<apirepopath:repository>", repositories.StarredRepositoryView.as_view(), name="api-starred"),
    path("user/logs", logs.UserLogsView.as_view(), name="api-user-logs"),
    path("user/aggregatelogs", logs.UserAggregateLogsView.as_view(), name="api-user-aggregatelogs"),
    path("organization/<str:orgname>/logs", logs.OrganizationLogsView.as_view(), name="api-organization-logs"),
    path(
        "organization/<str:orgname>/aggregatelogs",
        logs.OrganizationAggregateLogsView.as_view(),
        name="api-organization-aggregatelogs",
    ),
    # Last: it would also match the sub-resource paths above.
    path(REPO, repositories.RepositoryView.as_view(), name="api-repository"),
]
