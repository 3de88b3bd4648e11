"""Robot accounts of the user's own namespace (``/user/robots``) or of an organization
(``/organization/<org>/robots``, admins only): create, show the token on request, regenerate it,
delete. The token is never put in a page unless asked for, and such answers are not cached."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache

from accounts import selectors as account_selectors
from accounts import services as account_services
from ui import forms
from ui.access import client_ip, organization_access
from ui.views.base import UiView, htmx_target
from ui.views.user import login_commands

TOKEN_ID = "robot-token"


class _RobotNamespace(UiView):
    """Resolves the namespace the robots belong to and checks the caller administers it."""

    sign_in_required = True

    def robot_namespace(self, request, org: str | None):
        if org is None:
            namespace = account_services.user_namespace_ensure(user=request.user)
            return namespace, None
        access = organization_access(request, org, need="admin")
        return access.organization, access

    def urls(self, namespace, org: str | None, short_name: str | None = None) -> dict:
        prefix = {"org": org} if org else {}
        names = {
            "list": "robots",
            "detail": "robot",
            "token": "robot-token",
            "regenerate": "robot-regenerate",
            "delete": "robot-delete",
        }
        kind = "org" if org else "user"
        urls = {"list": reverse(f"ui:{kind}-robots", kwargs=prefix)}
        if short_name:
            for key in ("detail", "token", "regenerate", "delete"):
                urls[key] = reverse(f"ui:{kind}-{names[key]}", kwargs={**prefix, "short_name": short_name})
        return urls

    def robot(self, namespace, short_name: str):
        robot = account_selectors.robot_by_short_name(namespace=namespace, short_name=short_name)
        if robot is None:
            raise Http404("No such robot")
        return robot


class RobotListView(_RobotNamespace):
    def get(self, request, org=None):
        namespace, access = self.robot_namespace(request, org)
        return self.render_list(request, namespace, org, access, forms.RobotCreateForm())

    def post(self, request, org=None):
        namespace, access = self.robot_namespace(request, org)
        form = forms.RobotCreateForm(request.POST)
        if form.is_valid():
            try:
                robot, _ = account_services.robot_register(
                    namespace=namespace,
                    short_name=form.cleaned_data["short_name"],
                    description=form.cleaned_data["description"],
                    actor=request.user,
                    ip=client_ip(request),
                )
            except ValidationError as exc:
                form.add_error("short_name", exc.messages)
            else:
                messages.success(request, f"Created the robot {robot.user.username}.")
                return redirect(self.urls(namespace, org, robot.short_name)["detail"])
        return self.render_list(request, namespace, org, access, form, status=400)

    def render_list(self, request, namespace, org, access, form, status=200):
        robots = list(account_selectors.robots_of(namespace=namespace))
        teams = account_selectors.robot_team_names(robot_users=[robot.user for robot in robots])
        rows = [
            {
                "robot": robot,
                "teams": teams.get(robot.user_id, []),
                "url": self.urls(namespace, org, robot.short_name)["detail"],
            }
            for robot in robots
        ]
        context = {
            "namespace": namespace,
            "org": access.organization if access else None,
            "access": access,
            "rows": rows,
            "form": form,
            "urls": self.urls(namespace, org),
        }
        return render(request, "ui/robots.html", context, status=status)


def render_robot(request, view, namespace, org, access, robot, *, token: str | None = None):
    context = {
        "namespace": namespace,
        "org": access.organization if access else None,
        "access": access,
        "robot": robot,
        "teams": account_selectors.robot_team_names(robot_users=[robot.user]).get(robot.user_id, []),
        "permissions": list(account_selectors.robot_permissions(robot_users=[robot.user])),
        "token": token,
        "token_commands": login_commands(request, robot.user.username, token) if token else None,
        "urls": view.urls(namespace, org, robot.short_name),
    }
    if token and htmx_target(request) == TOKEN_ID:
        return render(request, "ui/_robot_token.html", context)
    return render(request, "ui/robot.html", context)


@method_decorator(never_cache, name="dispatch")
class RobotView(_RobotNamespace):
    def get(self, request, short_name, org=None):
        namespace, access = self.robot_namespace(request, org)
        return render_robot(request, self, namespace, org, access, self.robot(namespace, short_name))


@method_decorator(never_cache, name="dispatch")
class RobotTokenView(_RobotNamespace):
    """The robot's token, on request (Quay shows it to the namespace's admins)."""

    def get(self, request, short_name, org=None):
        namespace, access = self.robot_namespace(request, org)
        robot = self.robot(namespace, short_name)
        return render_robot(
            request, self, namespace, org, access, robot, token=account_services.robot_token(robot=robot)
        )


@method_decorator(never_cache, name="dispatch")
class RobotRegenerateView(_RobotNamespace):
    http_method_names = ["post"]

    def post(self, request, short_name, org=None):
        namespace, access = self.robot_namespace(request, org)
        robot = self.robot(namespace, short_name)
        token = account_services.robot_regenerate(robot=robot, actor=request.user, ip=client_ip(request))
        messages.success(request, f"Regenerated the token of {robot.user.username}; the old token no longer works.")
        return render_robot(request, self, namespace, org, access, robot, token=token)


class RobotDeleteView(_RobotNamespace):
    http_method_names = ["post"]

    def post(self, request, short_name, org=None):
        namespace, access = self.robot_namespace(request, org)
        robot = self.robot(namespace, short_name)
        name = robot.user.username
        account_services.robot_delete(robot=robot, actor=request.user, ip=client_ip(request))
        messages.success(request, f"Deleted the robot {name}.")
        return redirect(self.urls(namespace, org)["list"])
