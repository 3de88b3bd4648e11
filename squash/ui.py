"""The Fetch Tag panel's "Squashed Docker Image" choice: a ``curl ... | docker load`` command with
the credentials the viewer picks (the guide's chapter 10).

Options, in order: no credentials (public repositories), each robot of the repository's namespace
that may read it (with its token, for those who may see robot tokens: the namespace's owner or
the organization's admins, as on the robot pages), and the viewer's own account (curl asks for
the password, which never appears in the page).
"""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings
from django.http import Http404

from accounts import selectors as account_selectors
from accounts import services as account_services
from accounts.models import Namespace, Team
from registry.models import Repository, Tag
from squash import selectors as squash_selectors
from squash import services as squash_services
from ui.views.repository import _SettingsChange, registry_host
from ui.views.tags import FetchChoice, FetchFormat, register_fetch_format


def _sees_robot_tokens(request, namespace: Namespace) -> bool:
    user = request.user
    if not user.is_authenticated:
        return False
    if user.is_superuser or namespace.user_id == user.pk:
        return True
    return namespace.kind == Namespace.Kind.ORGANIZATION and Team.Role.ADMIN in account_selectors.organization_roles(
        user=user, organization=namespace
    )


def squash_url(request, repository: Repository, tag: str, userinfo: str = "") -> str:
    scheme = settings.PREFERRED_URL_SCHEME or request.scheme
    credentials = f"{userinfo}@" if userinfo else ""
    return f"{scheme}://{credentials}{registry_host(request)}/c1/squash/{repository.full_name}/{tag}"


def squash_options(request, repository: Repository, tag: Tag) -> list[FetchChoice]:
    options = []
    if repository.is_public:
        url = squash_url(request, repository, tag.name)
        options.append(FetchChoice("anonymous", "No robot (public repository)", f"curl -L -f {url} | docker load"))
    if _sees_robot_tokens(request, repository.namespace):
        for robot in squash_selectors.robots_reading(repository=repository):
            userinfo = f"{quote(robot.user.username, safe='+')}:{account_services.robot_token(robot=robot)}"
            url = squash_url(request, repository, tag.name, userinfo)
            command = f"curl -L -f {url} | docker load"
            options.append(FetchChoice(f"robot:{robot.user.username}", robot.user.username, command))
    if request.user.is_authenticated and not request.user.is_robot:
        url = squash_url(request, repository, tag.name)
        options.append(
            FetchChoice(
                "account",
                f"{request.user.username} (curl asks for your password)",
                f"curl -L -f -u {request.user.username} {url} | docker load",
            )
        )
    return options


def register() -> None:
    register_fetch_format(
        FetchFormat(
            "squash",
            "Squashed Docker Image",
            lambda ref, tag, digest: "",
            options=squash_options,
            options_label="Robot account",
        ),
        after="podman-digest",
    )


class SquashSettingsView(_SettingsChange):
    """The Settings tab's "Squash at push" switch (repository admins)."""

    def change(self, request, access):
        if access.repository.kind != Repository.Kind.IMAGE:
            raise Http404("Only image repositories are squashed")
        enabled = request.POST.get("squash_at_push") == "on"
        squash_services.squash_settings_set(repository=access.repository, squash_at_push=enabled)
        state = "squashed in the background" if enabled else "no longer squashed"
        return self.done(request, access, f"Tags pushed to {access.repository.full_name} are now {state}.")
