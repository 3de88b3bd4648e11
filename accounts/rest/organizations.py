"""Organizations: create, read, update, delete, and their members (Quay's /organization/ paths)."""

from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from accounts import scopes, selectors, services
from accounts.models import Namespace
from accounts.rest import docs
from accounts.rest.access import Forbidden, OrgAccess, client_ip, org_access
from accounts.rest.serializers import org_avatar, team_avatar, user_avatar
from quay_site.rest.errors import InvalidRequest, NotFound
from quay_site.rest.views import ApiView

# Namespace.time_machine_seconds is a PositiveIntegerField.
MAX_TAG_EXPIRATION_S = 2**31 - 1


def invalid(exc: ValidationError) -> InvalidRequest:
    return InvalidRequest(" ".join(exc.messages))


def team_summary(team, can_view: bool) -> dict:
    return {
        "name": team.name,
        "description": team.description,
        "role": team.role,
        "avatar": team_avatar(team),
        "can_view": can_view,
        "repo_count": team.repo_count,
        "member_count": team.member_count,
        "is_synced": False,
    }


def org_view(access: OrgAccess, viewer) -> dict:
    org: Namespace = access.organization
    view = {
        "name": org.name,
        "email": org.email if access.is_admin else "",
        "avatar": org_avatar(org),
        "is_admin": access.is_admin,
        "is_member": access.is_member,
    }
    if access.is_member:
        teams = list(selectors.organization_teams(organization=org))
        own = None if access.is_admin else selectors.team_names_of(user=viewer, organization=org)
        view["teams"] = {team.name: team_summary(team, own is None or team.name in own) for team in teams}
        view["ordered_teams"] = [team.name for team in teams]
    if access.is_admin:
        view.update(
            {
                "invoice_email": False,
                "invoice_email_address": None,
                "tag_expiration_s": org.time_machine_seconds,
                "is_free_account": True,
            }
        )
    return view


class NewOrgInput(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    email = serializers.EmailField(required=False, allow_blank=True, default="")


class UpdateOrgInput(serializers.Serializer):
    email = serializers.EmailField(required=False, allow_blank=True)
    tag_expiration_s = serializers.IntegerField(required=False, min_value=0, max_value=MAX_TAG_EXPIRATION_S)
    # Billing is not part of this registry; Quay's invoice fields are accepted and ignored.
    invoice_email = serializers.BooleanField(required=False)
    invoice_email_address = serializers.CharField(required=False, allow_null=True, allow_blank=True)


class OrganizationListView(ApiView):
    """``POST /api/v1/organization/``: create an organization owned by the caller."""

    required_scopes = {"POST": scopes.USER_ADMIN}
    nicknames = {"POST": "createOrganization"}

    @extend_schema(
        request=NewOrgInput, responses={201: OpenApiResponse(OpenApiTypes.STR, description='The string "Created"')}
    )
    def post(self, request):
        """Create an organization; the caller becomes a member of its owners team."""
        data = NewOrgInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.organization_register(
                name=data.validated_data["name"],
                email=data.validated_data["email"],
                creator=request.user,
                ip=client_ip(request),
            )
        except ValidationError as exc:
            raise invalid(exc) from None
        return Response("Created", status=201)


class OrganizationView(ApiView):
    """``GET|PUT|DELETE /api/v1/organization/<org>``."""

    required_scopes = {"GET": None, "PUT": scopes.ORG_ADMIN, "DELETE": scopes.ORG_ADMIN}
    nicknames = {"GET": "getOrganization", "PUT": "changeOrganizationDetails", "DELETE": "deleteAdminedOrganization"}

    @extend_schema(parameters=[docs.ORGNAME], responses={200: docs.OrganizationDoc})
    def get(self, request, orgname):
        """The organization; members also see its teams, admins its settings."""
        return Response(org_view(org_access(request, orgname), request.user))

    @extend_schema(parameters=[docs.ORGNAME], request=UpdateOrgInput, responses={200: docs.OrganizationDoc})
    def put(self, request, orgname):
        """Change the organization's e-mail or tag expiration window."""
        access = org_access(request, orgname)
        if not access.is_admin:
            # The organization is public, so refusing with 403 reveals nothing.
            raise Forbidden()
        data = UpdateOrgInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.organization_update(
                organization=access.organization,
                actor=request.user,
                email=data.validated_data.get("email"),
                tag_expiration_s=data.validated_data.get("tag_expiration_s"),
                ip=client_ip(request),
            )
        except ValidationError as exc:
            raise invalid(exc) from None
        return Response(org_view(access, request.user))

    @extend_schema(parameters=[docs.ORGNAME], responses={204: docs.DELETED})
    def delete(self, request, orgname):
        """Delete the organization with its repositories, teams, robots and applications."""
        access = org_access(request, orgname)
        if not access.is_admin:
            raise Forbidden()
        services.organization_delete(organization=access.organization, actor=request.user, ip=client_ip(request))
        return Response(status=204)


def member_summary(member) -> dict:
    return {
        "name": member.user.username,
        "kind": "robot" if member.user.is_robot else "user",
        "avatar": user_avatar(member.user),
        "teams": [{"name": team.name, "avatar": team_avatar(team)} for team in member.teams],
        "repositories": member.repositories,
    }


class OrganizationMembersView(ApiView):
    """``GET /api/v1/organization/<org>/members``: the people in the organization's teams."""

    required_scopes = {"GET": scopes.ORG_ADMIN}
    nicknames = {"GET": "getOrganizationMembers"}

    @extend_schema(parameters=[docs.ORGNAME], responses={200: docs.OrganizationMemberListDoc})
    def get(self, request, orgname):
        """The people in the organization's teams, with their teams and repositories."""
        access = org_access(request, orgname, need="admin")
        members = selectors.organization_members(organization=access.organization)
        return Response({"members": [member_summary(member) for member in members]})


class OrganizationMemberView(ApiView):
    """``GET|DELETE /api/v1/organization/<org>/members/<member>``."""

    required_scopes = {"GET": scopes.ORG_ADMIN, "DELETE": scopes.ORG_ADMIN}
    nicknames = {"GET": "getOrganizationMember", "DELETE": "removeOrganizationMember"}

    @extend_schema(parameters=[docs.ORGNAME, docs.MEMBERNAME], responses={200: docs.OrganizationMemberDoc})
    def get(self, request, orgname, membername):
        """One member's teams and direct repository permissions."""
        access = org_access(request, orgname, need="admin")
        user = selectors.user_by_name(username=membername)
        member = user and selectors.organization_member(organization=access.organization, user=user)
        if not member:
            raise NotFound()
        return Response(member_summary(member))

    @extend_schema(parameters=[docs.ORGNAME, docs.MEMBERNAME], responses={204: docs.DELETED})
    def delete(self, request, orgname, membername):
        """Remove a person from every team and repository of the organization."""
        access = org_access(request, orgname, need="admin")
        user = selectors.user_by_name(username=membername)
        if user is None or user.is_robot:
            raise NotFound()
        try:
            services.organization_member_remove(
                organization=access.organization, user=user, actor=request.user, ip=client_ip(request)
            )
        except ValidationError as exc:
            raise invalid(exc) from None
        return Response(status=204)
