"""Teams of an organization and their members (Quay's /organization/<org>/team/ paths)."""

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from accounts import scopes, selectors, services
from accounts.models import Team
from accounts.rest import docs
from accounts.rest.access import Forbidden, client_ip, org_access
from accounts.rest.organizations import invalid
from accounts.rest.serializers import team_avatar, user_avatar
from quay_site.rest.errors import InvalidRequest, NotFound
from quay_site.rest.views import ApiView


def team_view(team: Team, *, new_team: bool) -> dict:
    return {
        "name": team.name,
        "description": team.description,
        "can_view": True,
        "role": team.role,
        "avatar": team_avatar(team),
        "new_team": new_team,
    }


def member_view(user) -> dict:
    return {
        "name": user.username,
        "kind": "user",
        "is_robot": user.is_robot,
        "avatar": user_avatar(user),
        "invited": False,
    }


def permission_view(permission) -> dict:
    return {
        "repository": {"name": permission.repository.name, "is_public": permission.repository.is_public},
        "role": permission.role,
    }


class TeamInput(serializers.Serializer):
    role = docs.TeamRoleField(choices=Team.Role.choices)
    description = serializers.CharField(required=False, allow_blank=True, max_length=4096)


def _team_or_404(organization, teamname: str) -> Team:
    team = selectors.team_by_name(organization=organization, name=teamname)
    if team is None:
        raise NotFound()
    return team


class TeamView(ApiView):
    """``PUT|DELETE /api/v1/organization/<org>/team/<team>``: create or update, delete."""

    required_scopes = {"PUT": scopes.ORG_ADMIN, "DELETE": scopes.ORG_ADMIN}
    nicknames = {"PUT": "updateOrganizationTeam", "DELETE": "deleteOrganizationTeam"}

    @extend_schema(parameters=[docs.ORGNAME, docs.TEAMNAME], request=TeamInput, responses={200: docs.TeamDoc})
    def put(self, request, orgname, teamname):
        """Create the team or change its role and description."""
        access = org_access(request, orgname, need="admin")
        data = TeamInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            team, created = services.team_put(
                organization=access.organization,
                name=teamname,
                role=data.validated_data["role"],
                description=data.validated_data.get("description"),
                actor=request.user,
                ip=client_ip(request),
            )
        except ValidationError as exc:
            raise invalid(exc) from None
        return Response(team_view(team, new_team=created))

    @extend_schema(parameters=[docs.ORGNAME, docs.TEAMNAME], responses={204: docs.DELETED})
    def delete(self, request, orgname, teamname):
        """Delete the team and its repository permissions."""
        access = org_access(request, orgname, need="admin")
        team = _team_or_404(access.organization, teamname)
        try:
            services.team_delete(team=team, actor=request.user, ip=client_ip(request))
        except ValidationError as exc:
            raise invalid(exc) from None
        return Response(status=204)


class TeamMembersView(ApiView):
    """``GET /api/v1/organization/<org>/team/<team>/members``: for admins and the team's members."""

    required_scopes = {"GET": scopes.ORG_ADMIN}
    nicknames = {"GET": "getOrganizationTeamMembers"}

    @extend_schema(parameters=[docs.ORGNAME, docs.TEAMNAME], responses={200: docs.TeamMemberListDoc})
    def get(self, request, orgname, teamname):
        """The members of the team."""
        access = org_access(request, orgname, need="member")
        team = _team_or_404(access.organization, teamname)
        if not access.is_admin and not team.members.filter(pk=request.user.pk).exists():
            raise Forbidden()
        members = selectors.team_members(team=team)
        return Response(
            {"name": team.name, "members": [member_view(user) for user in members], "can_edit": access.is_admin}
        )


class TeamMemberView(ApiView):
    """``PUT|DELETE /api/v1/organization/<org>/team/<team>/members/<member>``."""

    required_scopes = {"PUT": scopes.ORG_ADMIN, "DELETE": scopes.ORG_ADMIN}
    nicknames = {"PUT": "updateOrganizationTeamMember", "DELETE": "deleteOrganizationTeamMember"}

    @extend_schema(
        parameters=[docs.ORGNAME, docs.TEAMNAME, docs.MEMBERNAME], request=None, responses={200: docs.TeamMemberDoc}
    )
    def put(self, request, orgname, teamname, membername):
        """Add a user, or a robot of the organization, to the team."""
        access = org_access(request, orgname, need="admin")
        team = _team_or_404(access.organization, teamname)
        user = selectors.user_by_name(username=membername)
        if user is None:
            raise InvalidRequest("Unknown user")
        try:
            services.team_member_put(team=team, user=user, actor=request.user, ip=client_ip(request))
        except ValidationError as exc:
            raise invalid(exc) from None
        return Response(member_view(user))

    @extend_schema(parameters=[docs.ORGNAME, docs.TEAMNAME, docs.MEMBERNAME], responses={204: docs.DELETED})
    def delete(self, request, orgname, teamname, membername):
        """Remove a member from the team."""
        access = org_access(request, orgname, need="admin")
        team = _team_or_404(access.organization, teamname)
        user = selectors.user_by_name(username=membername)
        if user is None:
            raise NotFound()
        try:
            removed = services.team_member_remove(team=team, user=user, actor=request.user, ip=client_ip(request))
        except ValidationError as exc:
            raise invalid(exc) from None
        if not removed:
            raise NotFound()
        return Response(status=204)


class TeamPermissionsView(ApiView):
    """``GET /api/v1/organization/<org>/team/<team>/permissions``: the team's repository roles."""

    required_scopes = {"GET": scopes.ORG_ADMIN}
    nicknames = {"GET": "getOrganizationTeamPermissions"}

    @extend_schema(parameters=[docs.ORGNAME, docs.TEAMNAME], responses={200: docs.RepositoryRoleListDoc})
    def get(self, request, orgname, teamname):
        """The team's repository permissions."""
        access = org_access(request, orgname, need="admin")
        team = _team_or_404(access.organization, teamname)
        permissions = selectors.team_permissions(team=team)
        return Response({"permissions": [permission_view(permission) for permission in permissions]})
