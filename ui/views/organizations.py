"""Organizations: create, overview, members, teams (roles and members) and settings.

Rules as on /api/v1: the organization is public by name (its page shows its public
repositories to anyone); teams are listed to members; members, team changes, robots and
settings are for admins (404 to outsiders, 403 to members who are not admins).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render

from accounts import selectors as account_selectors
from accounts import services as account_services
from ui import forms
from ui import selectors as ui_selectors
from ui.access import client_ip, is_superuser, organization_access
from ui.views.base import UiView


class OrganizationListView(UiView):
    sign_in_required = True

    def get(self, request):
        return render(
            request, "ui/organization_list.html", {"organizations": ui_selectors.organizations_of(user=request.user)}
        )


class OrganizationCreateView(UiView):
    """The + menu's New Organization; its creator lands in the ``owners`` team (admin)."""

    sign_in_required = True
    template = "ui/organization_new.html"

    def get(self, request):
        return render(request, self.template, {"form": forms.OrganizationCreateForm()})

    def post(self, request):
        form = forms.OrganizationCreateForm(request.POST)
        if form.is_valid():
            try:
                org = account_services.organization_register(
                    name=form.cleaned_data["name"],
                    creator=request.user,
                    email=form.cleaned_data["email"],
                    ip=client_ip(request),
                )
            except ValidationError as exc:
                form.add_error("name", exc.messages)
            else:
                messages.success(request, f"Created the organization {org.name}.")
                return redirect("ui:organization", org=org.name)
        return render(request, self.template, {"form": form}, status=400)


def render_organization(request, access, *, status=200, **bound):
    org = access.organization
    user = request.user if request.user.is_authenticated else None
    context = {
        "org": org,
        "access": access,
        "repositories": ui_selectors.organization_repositories(
            organization=org, user=user, superuser=is_superuser(request)
        ),
        "teams": list(account_selectors.organization_teams(organization=org)) if access.is_member else [],
        "team_form": bound.get("team_form") or forms.TeamCreateForm(),
    }
    return render(request, "ui/organization.html", context, status=status)


class OrganizationView(UiView):
    def get(self, request, org):
        return render_organization(request, organization_access(request, org))


class TeamCreateView(UiView):
    sign_in_required = True
    http_method_names = ["post"]

    def post(self, request, org):
        access = organization_access(request, org, need="admin")
        form = forms.TeamCreateForm(request.POST, organization=access.organization)
        if not form.is_valid():
            return render_organization(request, access, status=400, team_form=form)
        try:
            team, _ = account_services.team_put(
                organization=access.organization,
                name=form.cleaned_data["name"],
                role=form.cleaned_data["role"],
                description=form.cleaned_data["description"],
                actor=request.user,
                ip=client_ip(request),
            )
        except ValidationError as exc:
            form.add_error("name", exc.messages)
            return render_organization(request, access, status=400, team_form=form)
        messages.success(request, f"Created the team {team.name}.")
        return redirect("ui:team", org=access.organization.name, team=team.name)


def _team_or_404(access, name: str):
    team = account_selectors.team_by_name(organization=access.organization, name=name)
    if team is None:
        raise Http404("No such team")
    return team


def render_team(request, access, team, *, status=200, **bound):
    context = {
        "org": access.organization,
        "access": access,
        "team": team,
        "members": list(account_selectors.team_members(team=team)),
        "permissions": list(account_selectors.team_permissions(team=team)),
        "update_form": bound.get("update_form")
        or forms.TeamUpdateForm(initial={"role": team.role, "description": team.description}),
        "member_form": bound.get("member_form") or forms.TeamMemberForm(),
        "robot_names": [robot.user.username for robot in account_selectors.robots_of(namespace=access.organization)],
    }
    return render(request, "ui/team.html", context, status=status)


class TeamView(UiView):
    """A team's members and repositories (members see it; admins change it)."""

    sign_in_required = True

    def get(self, request, org, team):
        access = organization_access(request, org, need="member")
        return render_team(request, access, _team_or_404(access, team))


class TeamUpdateView(UiView):
    sign_in_required = True
    http_method_names = ["post"]

    def post(self, request, org, team):
        access = organization_access(request, org, need="admin")
        team = _team_or_404(access, team)
        form = forms.TeamUpdateForm(request.POST)
        if not form.is_valid():
            return render_team(request, access, team, status=400, update_form=form)
        try:
            account_services.team_put(
                organization=access.organization,
                name=team.name,
                role=form.cleaned_data["role"],
                description=form.cleaned_data["description"],
                actor=request.user,
                ip=client_ip(request),
            )
        except ValidationError as exc:
            form.add_error("role", exc.messages)
            team.refresh_from_db()
            return render_team(request, access, team, status=400, update_form=form)
        messages.success(request, f"Saved the team {team.name}.")
        return redirect("ui:team", org=access.organization.name, team=team.name)


class TeamDeleteView(UiView):
    sign_in_required = True
    http_method_names = ["post"]

    def post(self, request, org, team):
        access = organization_access(request, org, need="admin")
        team = _team_or_404(access, team)
        try:
            account_services.team_delete(team=team, actor=request.user, ip=client_ip(request))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return render_team(request, access, team, status=400)
        messages.success(request, f"Deleted the team {team.name}.")
        return redirect("ui:organization", org=access.organization.name)


class TeamMemberAddView(UiView):
    sign_in_required = True
    http_method_names = ["post"]

    def post(self, request, org, team):
        access = organization_access(request, org, need="admin")
        team = _team_or_404(access, team)
        form = forms.TeamMemberForm(request.POST)
        if not form.is_valid():
            return render_team(request, access, team, status=400, member_form=form)
        username = form.cleaned_data["username"].strip()
        user = account_selectors.user_by_name(username=username)
        if user is None:
            form.add_error("username", f"There is no user or robot named “{username}”.")
            return render_team(request, access, team, status=400, member_form=form)
        try:
            account_services.team_member_put(team=team, user=user, actor=request.user, ip=client_ip(request))
        except ValidationError as exc:
            form.add_error("username", exc.messages)
            return render_team(request, access, team, status=400, member_form=form)
        messages.success(request, f"Added {user.username} to the team {team.name}.")
        return redirect("ui:team", org=access.organization.name, team=team.name)


class TeamMemberRemoveView(UiView):
    sign_in_required = True
    http_method_names = ["post"]

    def post(self, request, org, team, username):
        access = organization_access(request, org, need="admin")
        team = _team_or_404(access, team)
        user = account_selectors.user_by_name(username=username)
        try:
            removed = user is not None and account_services.team_member_remove(
                team=team, user=user, actor=request.user, ip=client_ip(request)
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return render_team(request, access, team, status=400)
        if not removed:
            raise Http404("No such member")
        messages.success(request, f"Removed {username} from the team {team.name}.")
        return redirect("ui:team", org=access.organization.name, team=team.name)


class MembersView(UiView):
    sign_in_required = True

    def get(self, request, org):
        access = organization_access(request, org, need="admin")
        members = account_selectors.organization_members(organization=access.organization)
        return render(
            request, "ui/organization_members.html", {"org": access.organization, "access": access, "members": members}
        )


class MemberRemoveView(UiView):
    sign_in_required = True
    http_method_names = ["post"]

    def post(self, request, org, username):
        access = organization_access(request, org, need="admin")
        user = account_selectors.user_by_name(username=username)
        if user is None or account_selectors.organization_member(organization=access.organization, user=user) is None:
            raise Http404("No such member")
        try:
            account_services.organization_member_remove(
                organization=access.organization, user=user, actor=request.user, ip=client_ip(request)
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Removed {username} from {access.organization.name}.")
        return redirect("ui:organization-members", org=access.organization.name)


def render_org_settings(request, access, *, status=200, **bound):
    org = access.organization
    context = {
        "org": org,
        "access": access,
        "email_form": bound.get("email_form") or forms.OrganizationEmailForm(initial={"email": org.email}),
        "time_machine_form": bound.get("time_machine_form") or forms.TimeMachineForm(current=org.time_machine_seconds),
    }
    return render(request, "ui/organization_settings.html", context, status=status)


class OrganizationSettingsView(UiView):
    """Contact e-mail and the time machine window of an organization (admins)."""

    sign_in_required = True

    def get(self, request, org):
        return render_org_settings(request, organization_access(request, org, need="admin"))

    def post(self, request, org):
        access = organization_access(request, org, need="admin")
        if "seconds" in request.POST:
            form = forms.TimeMachineForm(request.POST, current=access.organization.time_machine_seconds)
            if not form.is_valid():
                return render_org_settings(request, access, status=400, time_machine_form=form)
            seconds = form.cleaned_data["seconds"]
            try:
                account_services.organization_update(
                    organization=access.organization,
                    actor=request.user,
                    tag_expiration_s=seconds,
                    ip=client_ip(request),
                )
            except ValidationError as exc:
                form.add_error("seconds", exc.messages)
                return render_org_settings(request, access, status=400, time_machine_form=form)
            messages.success(request, f"Time machine set to {forms.describe_seconds(seconds)}.")
        else:
            form = forms.OrganizationEmailForm(request.POST)
            if not form.is_valid():
                return render_org_settings(request, access, status=400, email_form=form)
            account_services.organization_update(
                organization=access.organization,
                actor=request.user,
                email=form.cleaned_data["email"],
                ip=client_ip(request),
            )
            messages.success(request, "Saved the organization's e-mail address.")
        return redirect("ui:organization-settings", org=access.organization.name)
