"""The web UI's pages (see ui/README.md for the map).

Repository names contain ``/``; ``uirepo`` matches only the repository-name grammar, so the
``/-/`` segment that introduces a repository's sub-pages can never be part of a name.
"""

from django.urls import path, register_converter

from ui.views import auth, organizations, repositories, repository, robots, tags, user


class RepositoryNameConverter:
    """``namespace/name[/more]``: path components of lowercase letters, digits and separators."""

    regex = r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(RepositoryNameConverter, "uirepo")

app_name = "ui"

REPO = "repository/<uirepo:repository>"
ORG = "organization/<str:org>"


def robot_routes(prefix: str, kind: str) -> list:
    return [
        path(f"{prefix}robots", robots.RobotListView.as_view(), name=f"{kind}-robots"),
        path(f"{prefix}robots/<str:short_name>", robots.RobotView.as_view(), name=f"{kind}-robot"),
        path(f"{prefix}robots/<str:short_name>/token", robots.RobotTokenView.as_view(), name=f"{kind}-robot-token"),
        path(
            f"{prefix}robots/<str:short_name>/regenerate",
            robots.RobotRegenerateView.as_view(),
            name=f"{kind}-robot-regenerate",
        ),
        path(f"{prefix}robots/<str:short_name>/delete", robots.RobotDeleteView.as_view(), name=f"{kind}-robot-delete"),
    ]


urlpatterns = [
    path("", repositories.RepositoryListView.as_view(), name="repository-list"),
    path("signin", auth.SigninView.as_view(), name="signin"),
    path("signout", auth.SignoutView.as_view(), name="signout"),
    path("signup", auth.SignupView.as_view(), name="signup"),
    # The + menu.
    path("new/repository", repositories.RepositoryCreateView.as_view(), name="repository-new"),
    path("new/organization", organizations.OrganizationCreateView.as_view(), name="organization-new"),
    # A repository: the page with its tabs (?tab=), then its changes under /-/.
    path(REPO, repository.RepositoryView.as_view(), name="repository"),
    path(f"{REPO}/-/star", repositories.RepositoryStarView.as_view(), name="repository-star"),
    path(f"{REPO}/-/description", repository.DescriptionChangeView.as_view(), name="repository-description"),
    path(f"{REPO}/-/visibility", repository.VisibilityChangeView.as_view(), name="repository-visibility"),
    path(f"{REPO}/-/permissions", repository.PermissionChangeView.as_view(), name="repository-permission"),
    path(
        f"{REPO}/-/permissions/delete", repository.PermissionDeleteView.as_view(), name="repository-permission-delete"
    ),
    path(f"{REPO}/-/delete", repository.RepositoryDeleteView.as_view(), name="repository-delete"),
    # The Tags and Tag History tabs (importing ``tags`` registers them).
    path(f"{REPO}/-/tags/add", tags.TagAddView.as_view(), name="repository-tag-add"),
    path(f"{REPO}/-/tags/move", tags.TagMoveView.as_view(), name="repository-tag-move"),
    path(f"{REPO}/-/tags/expiration", tags.TagExpirationView.as_view(), name="repository-tag-expiration"),
    path(f"{REPO}/-/tags/delete", tags.TagDeleteView.as_view(), name="repository-tags-delete"),
    path(f"{REPO}/-/tags/restore", tags.TagRestoreView.as_view(), name="repository-tag-restore"),
    path(f"{REPO}/-/tags/purge", tags.TagPurgeView.as_view(), name="repository-tag-purge"),
    # The signed-in user.
    path("user/settings", user.UserSettingsView.as_view(), name="user-settings"),
    path("user/settings/password", user.PasswordChangeView.as_view(), name="user-password"),
    path("user/settings/time-machine", user.UserTimeMachineView.as_view(), name="user-time-machine"),
    path("user/tokens", user.AppTokenCreateView.as_view(), name="user-token-create"),
    path("user/tokens/<uuid:token_uuid>/revoke", user.AppTokenRevokeView.as_view(), name="user-token-revoke"),
    *robot_routes("user/", "user"),
    # Organizations.
    path("organizations", organizations.OrganizationListView.as_view(), name="organization-list"),
    path(ORG, organizations.OrganizationView.as_view(), name="organization"),
    path(f"{ORG}/members", organizations.MembersView.as_view(), name="organization-members"),
    path(
        f"{ORG}/members/<str:username>/remove",
        organizations.MemberRemoveView.as_view(),
        name="organization-member-remove",
    ),
    path(f"{ORG}/settings", organizations.OrganizationSettingsView.as_view(), name="organization-settings"),
    path(f"{ORG}/teams", organizations.TeamCreateView.as_view(), name="team-create"),
    path(f"{ORG}/teams/<str:team>", organizations.TeamView.as_view(), name="team"),
    path(f"{ORG}/teams/<str:team>/update", organizations.TeamUpdateView.as_view(), name="team-update"),
    path(f"{ORG}/teams/<str:team>/delete", organizations.TeamDeleteView.as_view(), name="team-delete"),
    path(f"{ORG}/teams/<str:team>/members", organizations.TeamMemberAddView.as_view(), name="team-member-add"),
    path(
        f"{ORG}/teams/<str:team>/members/<str:username>/remove",
        organizations.TeamMemberRemoveView.as_view(),
        name="team-member-remove",
    ),
    *robot_routes(f"{ORG}/", "org"),
]
