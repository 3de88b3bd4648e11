"""The web UI's pages (see ui/README.md for the map).

Repository names contain ``/``; ``uirepo`` matches only the repository-name grammar, so the
``/-/`` segment that introduces a repository's sub-pages can never be part of a name.
"""

from django.urls import path, register_converter

from ui.views import (
    auth,
    builds,
    notifications,
    organizations,
    repositories,
    repository,
    robots,
    security,
    tags,
    triggers,
    user,
)


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
NOTE = f"{REPO}/-/notifications/<uuid:notification_uuid>"
TRIG = f"{REPO}/-/triggers/<uuid:trigger_uuid>"


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
    # A build's page at Quay's address (build notifications link to it): before the repository
    # route, whose name pattern would otherwise take ``build/<uuid>`` as part of the name.
    path(f"{REPO}/build/<uuid:build_uuid>", builds.BuildView.as_view(), name="repository-build"),
    # An image's security scan at Quay's address (its manifest page): a digest has a ``:``, which
    # no repository name has, so this cannot clash with a nested name.
    path(f"{REPO}/manifest/<str:digest>", security.ManifestSecurityView.as_view(), name="repository-manifest"),
    # A repository: the page with its tabs (?tab=), then its changes under /-/.
    path(REPO, repository.RepositoryView.as_view(), name="repository"),
    # The Builds tab (importing ``builds`` registers it), New Dockerfile Build and Cancel.
    path(f"{REPO}/-/builds/new", builds.BuildCreateView.as_view(), name="repository-build-new"),
    path(f"{REPO}/-/builds/<uuid:build_uuid>/cancel", builds.BuildCancelView.as_view(), name="repository-build-cancel"),
    # Build triggers (admins; importing ``triggers`` adds their section to the Builds tab).
    path(
        f"{REPO}/-/triggers/new/custom-git",
        triggers.CustomGitCreateView.as_view(),
        name="repository-trigger-new-custom",
    ),
    path(
        f"{REPO}/-/triggers/new/<str:service>",
        triggers.ProviderCreateView.as_view(),
        name="repository-trigger-new-provider",
    ),
    path(f"{TRIG}/setup", triggers.TriggerSetupView.as_view(), name="repository-trigger-setup"),
    path(f"{TRIG}/connect", triggers.TriggerConnectView.as_view(), name="repository-trigger-connect"),
    path(f"{TRIG}/activate", triggers.TriggerActivateView.as_view(), name="repository-trigger-activate"),
    path(f"{TRIG}/credentials", triggers.TriggerCredentialsView.as_view(), name="repository-trigger-credentials"),
    path(f"{TRIG}/run", triggers.TriggerRunView.as_view(), name="repository-trigger-run"),
    path(f"{TRIG}/enabled", triggers.TriggerEnabledView.as_view(), name="repository-trigger-enabled"),
    path(f"{TRIG}/delete", triggers.TriggerDeleteView.as_view(), name="repository-trigger-delete"),
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
    # Notifications of a repository (admins): the form, a rule's delivery log and its actions.
    path(
        f"{REPO}/-/notifications/new",
        notifications.NotificationCreateView.as_view(),
        name="repository-notification-new",
    ),
    path(
        f"{REPO}/-/notifications/email-state",
        notifications.NotificationEmailStateView.as_view(),
        name="repository-notification-email-state",
    ),
    path(f"{NOTE}", notifications.NotificationLogView.as_view(), name="repository-notification"),
    path(f"{NOTE}/delete", notifications.NotificationDeleteView.as_view(), name="repository-notification-delete"),
    path(f"{NOTE}/reset", notifications.NotificationResetView.as_view(), name="repository-notification-reset"),
    path(f"{NOTE}/test", notifications.NotificationTestView.as_view(), name="repository-notification-test"),
    path(
        f"{NOTE}/deliveries/<uuid:delivery_uuid>/redeliver",
        notifications.DeliveryRedeliverView.as_view(),
        name="repository-notification-redeliver",
    ),
    # The signed-in user.
    path("user/settings", user.UserSettingsView.as_view(), name="user-settings"),
    path("user/settings/password", user.PasswordChangeView.as_view(), name="user-password"),
    path("user/settings/time-machine", user.UserTimeMachineView.as_view(), name="user-time-machine"),
    path("user/tokens", user.AppTokenCreateView.as_view(), name="user-token-create"),
    path("user/tokens/<uuid:token_uuid>/revoke", user.AppTokenRevokeView.as_view(), name="user-token-revoke"),
    *robot_routes("user/", "user"),
    path("user/notifications", notifications.UserNotificationListView.as_view(), name="user-notifications"),
    path("user/notifications/bell", notifications.UserNotificationBellView.as_view(), name="user-notifications-bell"),
    path(
        "user/notifications/<uuid:notice_uuid>/dismiss",
        notifications.UserNotificationDismissView.as_view(),
        name="user-notification-dismiss",
    ),
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
