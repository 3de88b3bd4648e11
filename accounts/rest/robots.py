"""Robot accounts of the signed-in user (/user/robots/) and of organizations
(/organization/<org>/robots/), with Quay's shapes. Tokens are shown to admins only."""

from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from accounts import scopes, selectors, services
from accounts.models import Namespace, Robot
from accounts.rest import docs
from accounts.rest.access import client_ip, org_access
from accounts.rest.organizations import invalid
from accounts.rest.serializers import avatar, format_date
from accounts.rest.teams import permission_view
from quay_site.rest.errors import InvalidRequest, NotFound
from quay_site.rest.params import int_param
from quay_site.rest.views import ApiView

ROBOT_METADATA_MAX_KEYS = 100
# More than a namespace has: the bound only keeps the number inside SQL's LIMIT.
MAX_ROBOT_LIMIT = 2**31 - 1


def query_flag(request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("true", "1", "yes", "on", "y", "t")


def robot_view(robot: Robot, *, token: str | None = None, metadata: bool = False) -> dict:
    view = {
        "name": robot.user.username,
        "created": format_date(robot.created),
        "last_accessed": format_date(robot.user.last_login),
        "description": robot.description,
    }
    if token is not None:
        view["token"] = token
    if metadata:
        view["unstructured_metadata"] = robot.unstructured_metadata
    return view


class RobotInput(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=255, default="")
    unstructured_metadata = serializers.DictField(required=False, allow_empty=True, allow_null=True, default=dict)

    def validate_unstructured_metadata(self, value):
        if value and len(value) > ROBOT_METADATA_MAX_KEYS:
            raise serializers.ValidationError(f"At most {ROBOT_METADATA_MAX_KEYS} keys")
        return value


class _UserRobots:
    """Robots of the caller's own namespace; the caller administers them."""

    required_scopes = {"*": scopes.USER_ADMIN}

    def robot_namespace(self, request, need: str, **kwargs) -> tuple[Namespace, bool]:
        namespace = selectors.user_namespace(user=request.user)
        if namespace is None:
            raise NotFound()
        return namespace, True


class _OrgRobots:
    required_scopes = {"*": scopes.ORG_ADMIN}

    def robot_namespace(self, request, need: str, orgname: str, **kwargs) -> tuple[Namespace, bool]:
        access = org_access(request, orgname, need=need)
        return access.organization, access.is_admin


def _robot_or_404(namespace: Namespace, short_name: str) -> Robot:
    robot = selectors.robot_by_short_name(namespace=namespace, short_name=short_name)
    if robot is None:
        raise NotFound()
    return robot


class _RobotList(ApiView):
    """``GET .../robots?token=&permissions=&limit=``: members list them, admins also see tokens
    and, with ``permissions=true``, each robot's teams and repositories."""

    @extend_schema(
        parameters=[
            docs.flag_param("token", "Include each robot's token (admins only; default true)"),
            docs.flag_param("permissions", "Include each robot's teams and repositories (admins only)"),
            OpenApiParameter("limit", OpenApiTypes.INT, description="At most this many robots"),
        ],
        responses={200: docs.RobotListDoc},
    )
    def get(self, request, **kwargs):
        """List the robots, with tokens for admins."""
        namespace, is_admin = self.robot_namespace(request, "member", **kwargs)
        include_token = is_admin and query_flag(request, "token", True)
        include_permissions = is_admin and query_flag(request, "permissions", False)
        limit = int_param(request, "limit", None, low=1, high=MAX_ROBOT_LIMIT)
        robots = list(selectors.robots_of(namespace=namespace, limit=limit))
        views = []
        teams: dict[int, list[str]] = {}
        repositories: dict[int, list[str]] = {}
        if include_permissions:
            users = [robot.user for robot in robots]
            teams = selectors.robot_team_names(robot_users=users)
            for permission in selectors.robot_permissions(robot_users=users):
                repositories.setdefault(permission.user_id, []).append(permission.repository.name)
        for robot in robots:
            view = robot_view(robot, token=services.robot_token(robot=robot) if include_token else None)
            if include_permissions:
                view["teams"] = [
                    {"name": name, "avatar": avatar(name, "", "team")} for name in teams.get(robot.user_id, [])
                ]
                view["repositories"] = repositories.get(robot.user_id, [])
            views.append(view)
        return Response({"robots": views})


class _RobotDetail(ApiView):
    """``GET|PUT|DELETE .../robots/<short>``: read (with token), create, delete; admins only."""

    @extend_schema(parameters=[docs.ROBOT_SHORTNAME], responses={200: docs.RobotDoc})
    def get(self, request, robot_shortname, **kwargs):
        """The robot with its token."""
        namespace, is_admin = self.robot_namespace(request, "admin", **kwargs)
        robot = _robot_or_404(namespace, robot_shortname)
        return Response(robot_view(robot, token=services.robot_token(robot=robot), metadata=True))

    @extend_schema(parameters=[docs.ROBOT_SHORTNAME], request=RobotInput, responses={201: docs.RobotDoc})
    def put(self, request, robot_shortname, **kwargs):
        """Create the robot; the answer carries its token."""
        namespace, _ = self.robot_namespace(request, "admin", **kwargs)
        data = RobotInput(data=request.data if request.data else {})
        data.is_valid(raise_exception=True)
        if selectors.robot_by_short_name(namespace=namespace, short_name=robot_shortname) is not None:
            raise InvalidRequest(f"Existing robot with name: {namespace.name}+{robot_shortname}")
        try:
            robot, token = services.robot_register(
                namespace=namespace,
                short_name=robot_shortname,
                description=data.validated_data["description"] or "",
                unstructured_metadata=data.validated_data["unstructured_metadata"] or {},
                actor=request.user,
                ip=client_ip(request),
            )
        except ValidationError as exc:
            raise invalid(exc) from None
        return Response(robot_view(robot, token=token, metadata=True), status=201)

    @extend_schema(parameters=[docs.ROBOT_SHORTNAME], responses={204: docs.DELETED})
    def delete(self, request, robot_shortname, **kwargs):
        """Delete the robot with its team memberships and permissions."""
        namespace, _ = self.robot_namespace(request, "admin", **kwargs)
        robot = _robot_or_404(namespace, robot_shortname)
        services.robot_delete(robot=robot, actor=request.user, ip=client_ip(request))
        return Response(status=204)


class _RobotRegenerate(ApiView):
    """``POST .../robots/<short>/regenerate``: a new token; the old one stops working at once."""

    @extend_schema(parameters=[docs.ROBOT_SHORTNAME], request=None, responses={200: docs.RobotDoc})
    def post(self, request, robot_shortname, **kwargs):
        """Replace the robot's token."""
        namespace, _ = self.robot_namespace(request, "admin", **kwargs)
        robot = _robot_or_404(namespace, robot_shortname)
        token = services.robot_regenerate(robot=robot, actor=request.user, ip=client_ip(request))
        return Response(robot_view(robot, token=token))


class _RobotPermissions(ApiView):
    """``GET .../robots/<short>/permissions``: the robot's direct repository roles."""

    @extend_schema(parameters=[docs.ROBOT_SHORTNAME], responses={200: docs.RepositoryRoleListDoc})
    def get(self, request, robot_shortname, **kwargs):
        """The robot's repository permissions."""
        namespace, _ = self.robot_namespace(request, "admin", **kwargs)
        robot = _robot_or_404(namespace, robot_shortname)
        permissions = selectors.robot_permissions(robot_users=[robot.user])
        return Response({"permissions": [permission_view(permission) for permission in permissions]})


class UserRobotListView(_UserRobots, _RobotList):
    nicknames = {"GET": "getUserRobots"}


class UserRobotView(_UserRobots, _RobotDetail):
    nicknames = {"GET": "getUserRobot", "PUT": "createUserRobot", "DELETE": "deleteUserRobot"}


class UserRobotRegenerateView(_UserRobots, _RobotRegenerate):
    nicknames = {"POST": "regenerateUserRobotToken"}


class UserRobotPermissionsView(_UserRobots, _RobotPermissions):
    nicknames = {"GET": "getUserRobotPermissions"}


# The shared methods document the robot's name; these add the organization in the path.
@extend_schema(parameters=[docs.ORGNAME])
class OrgRobotListView(_OrgRobots, _RobotList):
    nicknames = {"GET": "getOrgRobots"}


@extend_schema(parameters=[docs.ORGNAME])
class OrgRobotView(_OrgRobots, _RobotDetail):
    nicknames = {"GET": "getOrgRobot", "PUT": "createOrgRobot", "DELETE": "deleteOrgRobot"}


@extend_schema(parameters=[docs.ORGNAME])
class OrgRobotRegenerateView(_OrgRobots, _RobotRegenerate):
    nicknames = {"POST": "regenerateOrgRobotToken"}


@extend_schema(parameters=[docs.ORGNAME])
class OrgRobotPermissionsView(_OrgRobots, _RobotPermissions):
    nicknames = {"GET": "getOrgRobotPermissions"}
