"""Repository permissions of users, robots and teams; managed by the repository's admins."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from accounts import scopes
from quay_site.rest.errors import InvalidRequest, NotFound
from quay_site.rest.views import ApiView
from registry import selectors, services
from registry.models import Repository, Role
from registry.rest import serializers as s
from registry.rest.access import client_ip, principal_of, repository_for

REPOSITORY = OpenApiParameter(
    "repository", OpenApiTypes.STR, OpenApiParameter.PATH, description="The full path: namespace/name"
)
USERNAME = OpenApiParameter(
    "username", OpenApiTypes.STR, OpenApiParameter.PATH, description="A user, or a robot as namespace+name"
)
TEAMNAME = OpenApiParameter(
    "teamname", OpenApiTypes.STR, OpenApiParameter.PATH, description="A team of the organization"
)
NO_PERMISSION = "User does not have permission for repo."


def _user_views(repository: Repository, permissions) -> list[dict]:
    """Quay's user permission shapes, with ``is_org_member`` for organization repositories."""
    namespace = repository.namespace
    organization = namespace.is_organization
    members = (
        selectors.organization_member_ids(organization=namespace, user_ids=[p.user_id for p in permissions])
        if organization
        else set()
    )
    return [
        s.user_permission_view(
            p.user, p.role, organization=organization, org_member=p.user.is_robot or p.user_id in members
        )
        for p in permissions
    ]


def _owner_view(repository: Repository) -> dict | None:
    """The owner of a user namespace is always admin of its repositories (Quay lists it so)."""
    namespace = repository.namespace
    if namespace.is_organization or namespace.user is None:
        return None
    return s.user_permission_view(namespace.user, Role.ADMIN, organization=False, org_member=False)


def _repository(request, repository: str) -> Repository:
    repo, _ = repository_for(request, repository, need=Role.ADMIN)
    return repo


class UserPermissionListView(ApiView):
    """Users and robots with a role on a repository."""

    required_scopes = {"GET": scopes.REPO_ADMIN}
    nicknames = {"GET": "listRepoUserPermissions"}

    @extend_schema(parameters=[REPOSITORY], responses={200: s.UserPermissionListDoc})
    def get(self, request, repository):
        """List the user and robot permissions of a repository."""
        repo = _repository(request, repository)
        views = _user_views(repo, selectors.repository_user_permissions(repository=repo))
        owner = _owner_view(repo)
        if owner is not None:
            views = [owner] + [v for v in views if v["name"] != owner["name"]]
        return Response({"permissions": {view["name"]: view for view in views}})


class UserPermissionView(ApiView):
    """The role of one user or robot on a repository."""

    required_scopes = {"GET": scopes.REPO_ADMIN, "PUT": scopes.REPO_ADMIN, "DELETE": scopes.REPO_ADMIN}
    nicknames = {"GET": "getUserPermissions", "PUT": "changeUserPermissions", "DELETE": "deleteUserPermissions"}

    @extend_schema(parameters=[REPOSITORY, USERNAME], responses={200: s.UserPermissionDoc})
    def get(self, request, repository, username):
        """Fetch the permission of a user or robot."""
        repo = _repository(request, repository)
        owner = _owner_view(repo)
        if owner is not None and owner["name"] == username:
            return Response(owner)
        permission = selectors.repository_user_permission(repository=repo, username=username)
        if permission is None:
            raise InvalidRequest(NO_PERMISSION)
        return Response(_user_views(repo, [permission])[0])

    @extend_schema(parameters=[REPOSITORY, USERNAME], request=s.RoleInput, responses={200: s.UserPermissionDoc})
    def put(self, request, repository, username):
        """Give a user or robot (of this namespace) a role on the repository."""
        repo = _repository(request, repository)
        data = s.RoleInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            permission = services.repository_permission_set_user(
                repository=repo,
                username=username,
                role=data.validated_data["role"],
                principal=principal_of(request),
                ip=client_ip(request),
            )
        except services.RequestRefused as exc:
            raise InvalidRequest(str(exc)) from None
        return Response(_user_views(repo, [permission])[0])

    @extend_schema(parameters=[REPOSITORY, USERNAME], responses={204: OpenApiResponse(description="Deleted")})
    def delete(self, request, repository, username):
        """Remove the permission of a user or robot."""
        repo = _repository(request, repository)
        try:
            services.repository_permission_delete_user(
                repository=repo, username=username, principal=principal_of(request), ip=client_ip(request)
            )
        except services.RequestRefused as exc:
            raise InvalidRequest(str(exc)) from None
        return Response(status=204)


class UserTransitivePermissionView(ApiView):
    """The roles a user holds on a repository directly and through teams."""

    required_scopes = {"GET": scopes.REPO_ADMIN}
    nicknames = {"GET": "getUserTransitivePermission"}

    @extend_schema(
        parameters=[REPOSITORY, USERNAME],
        responses={
            200: inline_serializer(
                "TransitivePermissions",
                {
                    "permissions": serializers.ListField(
                        child=inline_serializer("RoleView", {"role": serializers.ChoiceField(choices=s.ROLES)})
                    )
                },
            )
        },
    )
    def get(self, request, repository, username):
        """List the roles of a user, granted directly or through a team."""
        repo = _repository(request, repository)
        roles = selectors.repository_granted_roles(repository=repo, username=username)
        if not roles:
            raise NotFound()
        return Response({"permissions": [{"role": role} for role in roles]})


class TeamPermissionListView(ApiView):
    """Teams with a role on a repository."""

    required_scopes = {"GET": scopes.REPO_ADMIN}
    nicknames = {"GET": "listRepoTeamPermissions"}

    @extend_schema(parameters=[REPOSITORY], responses={200: s.TeamPermissionListDoc})
    def get(self, request, repository):
        """List the team permissions of a repository."""
        repo = _repository(request, repository)
        permissions = selectors.repository_team_permissions(repository=repo)
        return Response({"permissions": {p.team.name: s.team_permission_view(p) for p in permissions}})


class TeamPermissionView(ApiView):
    """The role of one team on a repository."""

    required_scopes = {"GET": scopes.REPO_ADMIN, "PUT": scopes.REPO_ADMIN, "DELETE": scopes.REPO_ADMIN}
    nicknames = {"GET": "getTeamPermissions", "PUT": "changeTeamPermissions", "DELETE": "deleteTeamPermissions"}

    @extend_schema(
        parameters=[REPOSITORY, TEAMNAME],
        responses={200: inline_serializer("TeamRole", {"role": serializers.ChoiceField(choices=s.ROLES)})},
    )
    def get(self, request, repository, teamname):
        """Fetch the role of a team."""
        repo = _repository(request, repository)
        permission = selectors.repository_team_permission(repository=repo, team_name=teamname)
        if permission is None:
            raise InvalidRequest("Team does not have permission for repo.")
        return Response({"role": permission.role})

    @extend_schema(parameters=[REPOSITORY, TEAMNAME], request=s.RoleInput, responses={200: s.TeamPermissionDoc})
    def put(self, request, repository, teamname):
        """Give a team of the organization a role on the repository."""
        repo = _repository(request, repository)
        data = s.RoleInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            permission = services.repository_permission_set_team(
                repository=repo,
                team_name=teamname,
                role=data.validated_data["role"],
                principal=principal_of(request),
                ip=client_ip(request),
            )
        except services.RequestRefused as exc:
            raise InvalidRequest(str(exc)) from None
        return Response(s.team_permission_view(permission))

    @extend_schema(parameters=[REPOSITORY, TEAMNAME], responses={204: OpenApiResponse(description="Deleted")})
    def delete(self, request, repository, teamname):
        """Remove the permission of a team."""
        repo = _repository(request, repository)
        try:
            services.repository_permission_delete_team(
                repository=repo, team_name=teamname, principal=principal_of(request), ip=client_ip(request)
            )
        except services.RequestRefused as exc:
            raise InvalidRequest(str(exc)) from None
        return Response(status=204)
