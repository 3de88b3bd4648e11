"""Superuser management of users and organizations (Quay's /superuser/ paths).

Every method needs the ``super:user`` scope and a superuser behind it. Differences from Quay,
whose superusers are listed in its config file: here ``superuser`` is a flag on the user, so
PUT can promote and demote; a superuser cannot disable or demote themselves, and superusers
cannot be deleted through the API (demote first), as in Quay.
"""

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response

from accounts import scopes, selectors, services
from accounts.models import User
from accounts.rest import docs
from accounts.rest.access import client_ip, require_superuser
from accounts.rest.organizations import invalid
from accounts.rest.robots import query_flag
from accounts.rest.serializers import org_avatar, user_avatar
from quay_site.rest.errors import InvalidRequest, NotFound
from quay_site.rest.views import ApiView


def user_view(user: User) -> dict:
    return {
        "kind": "user",
        "name": user.username,
        "username": user.username,
        "email": user.email,
        "verified": True,
        "avatar": user_avatar(user),
        "super_user": user.is_superuser,
        "enabled": user.is_active,
    }


def org_view(org) -> dict:
    return {"name": org.name, "email": org.email, "avatar": org_avatar(org)}


class CreateUserInput(serializers.Serializer):
    username = serializers.CharField(max_length=255)
    email = serializers.EmailField(required=False, allow_blank=True, default="")


class UpdateUserInput(serializers.Serializer):
    password = serializers.CharField(required=False, min_length=8, max_length=1024, trim_whitespace=False)
    email = serializers.EmailField(required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)
    superuser = serializers.BooleanField(required=False)


# organizations.UpdateOrgInput already names a schema component.
@extend_schema_serializer(component_name="SuperuserUpdateOrgInput")
class UpdateOrgInput(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=255)
    email = serializers.EmailField(required=False, allow_blank=True)


class _SuperuserView(ApiView):
    required_scopes = {"*": scopes.SUPERUSER}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        require_superuser(request)


def _person_or_404(username: str) -> User:
    user = selectors.user_by_name(username=username)
    if user is None or user.is_robot:
        raise NotFound()
    return user


class SuperUserListView(_SuperuserView):
    """``GET|POST /api/v1/superuser/users/``; ``?disabled=false`` lists enabled users only."""

    nicknames = {"GET": "listAllUsers", "POST": "createInstallUser"}

    @extend_schema(
        parameters=[docs.flag_param("disabled", "Include disabled users (default true)")],
        responses={200: docs.InstallUserListDoc},
    )
    def get(self, request):
        """Every user of the install."""
        users = selectors.people(include_disabled=query_flag(request, "disabled", True))
        return Response({"users": [user_view(user) for user in users]})

    @extend_schema(request=CreateUserInput, responses={200: docs.CreatedInstallUserDoc})
    def post(self, request):
        """Create a user with a generated password."""
        data = CreateUserInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            user, password = services.superuser_user_create(
                username=data.validated_data["username"],
                email=data.validated_data["email"],
                actor=request.user,
                ip=client_ip(request),
            )
        except ValidationError as exc:
            raise invalid(exc) from None
        return Response(
            {"username": user.username, "email": user.email, "password": password, "encrypted_password": ""}
        )


class SuperUserManagementView(_SuperuserView):
    """``GET|PUT|DELETE /api/v1/superuser/users/<username>``."""

    nicknames = {"GET": "getInstallUser", "PUT": "changeInstallUser", "DELETE": "deleteInstallUser"}

    @extend_schema(parameters=[docs.USERNAME], responses={200: docs.InstallUserDoc})
    def get(self, request, username):
        """One user."""
        return Response(user_view(_person_or_404(username)))

    @extend_schema(parameters=[docs.USERNAME], request=UpdateUserInput, responses={200: docs.InstallUserDoc})
    def put(self, request, username):
        """Change a user's e-mail, password, enabled or superuser flag."""
        user = _person_or_404(username)
        data = UpdateUserInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            services.superuser_user_update(
                user=user,
                actor=request.user,
                email=values.get("email"),
                password=values.get("password"),
                enabled=values.get("enabled"),
                superuser=values.get("superuser"),
                ip=client_ip(request),
            )
        except ValidationError as exc:
            raise invalid(exc) from None
        view = user_view(user)
        if "password" in values:
            view["encrypted_password"] = ""
        return Response(view)

    @extend_schema(parameters=[docs.USERNAME], responses={204: docs.DELETED})
    def delete(self, request, username):
        """Delete a user with their namespace."""
        user = _person_or_404(username)
        if user.is_superuser:
            raise InvalidRequest("Cannot delete a superuser")
        services.user_delete(user=user, actor=request.user, ip=client_ip(request))
        return Response(status=204)


class SuperUserOrganizationListView(_SuperuserView):
    """``GET /api/v1/superuser/organizations/``."""

    nicknames = {"GET": "listAllOrganizations"}

    @extend_schema(responses={200: docs.InstallOrganizationListDoc})
    def get(self, request):
        """Every organization of the install."""
        return Response({"organizations": [org_view(org) for org in selectors.organizations()]})


class SuperUserOrganizationView(_SuperuserView):
    """``PUT|DELETE /api/v1/superuser/organizations/<name>``: rename or change e-mail, delete."""

    nicknames = {"PUT": "changeOrganization", "DELETE": "deleteOrganization"}

    @extend_schema(
        parameters=[docs.SUPERUSER_ORGNAME], request=UpdateOrgInput, responses={200: docs.InstallOrganizationDoc}
    )
    def put(self, request, name):
        """Rename an organization or change its e-mail."""
        organization = selectors.organization_by_name(name=name)
        if organization is None:
            raise NotFound()
        data = UpdateOrgInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            if "name" in data.validated_data:
                services.organization_rename(
                    organization=organization,
                    new_name=data.validated_data["name"],
                    actor=request.user,
                    ip=client_ip(request),
                )
            if "email" in data.validated_data:
                services.organization_update(
                    organization=organization,
                    email=data.validated_data["email"],
                    actor=request.user,
                    ip=client_ip(request),
                )
        except ValidationError as exc:
            raise invalid(exc) from None
        return Response(org_view(organization))

    @extend_schema(parameters=[docs.SUPERUSER_ORGNAME], responses={204: docs.DELETED})
    def delete(self, request, name):
        """Delete an organization."""
        organization = selectors.organization_by_name(name=name)
        if organization is None:
            raise NotFound()
        services.organization_delete(organization=organization, actor=request.user, ip=client_ip(request))
        return Response(status=204)
