"""The signed-in user's settings: password, app-specific tokens with the CLI login command, and
the time machine of their own namespace."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache

from accounts import selectors as account_selectors
from accounts import services as account_services
from ui import forms
from ui.access import client_ip
from ui.views.base import UiView
from ui.views.repository import registry_host


def login_commands(request, username: str, secret: str) -> list[tuple[str, str]]:
    host = registry_host(request)
    return [
        ("podman", f"podman login -u='{username}' -p='{secret}' {host}"),
        ("docker", f"docker login -u='{username}' -p='{secret}' {host}"),
    ]


def render_settings(request, *, status=200, new_token=None, **bound):
    user = request.user
    namespace = account_selectors.user_namespace(user=user)
    current = namespace.time_machine_seconds if namespace is not None else None
    context = {
        "password_form": bound.get("password_form") or forms.PasswordForm(user),
        "token_form": bound.get("token_form") or forms.AppTokenForm(),
        "time_machine_form": bound.get("time_machine_form") or forms.TimeMachineForm(current=current),
        "app_tokens": list(account_selectors.app_tokens(user=user)),
        "new_token": new_token,
        "new_token_commands": login_commands(request, user.username, new_token[1]) if new_token else None,
        "registry_host": registry_host(request),
    }
    return render(request, "ui/user_settings.html", context, status=status)


@method_decorator(never_cache, name="dispatch")
class UserSettingsView(UiView):
    sign_in_required = True

    def get(self, request):
        return render_settings(request)


class PasswordChangeView(UiView):
    sign_in_required = True
    http_method_names = ["post"]

    def post(self, request):
        form = forms.PasswordForm(request.user, request.POST)
        if not form.is_valid():
            return render_settings(request, status=400, password_form=form)
        account_services.user_password_change(
            user=request.user, password=form.cleaned_data["new_password1"], ip=client_ip(request)
        )
        # Keep this session signed in; other sessions of the user end with the old password.
        update_session_auth_hash(request, request.user)
        messages.success(request, "Your password has been changed.")
        return redirect("ui:user-settings")


@method_decorator(never_cache, name="dispatch")
class AppTokenCreateView(UiView):
    """Creates a token and shows it once, in the answer to this POST (never stored in clear)."""

    sign_in_required = True
    http_method_names = ["post"]

    def post(self, request):
        form = forms.AppTokenForm(request.POST)
        if not form.is_valid():
            return render_settings(request, status=400, token_form=form)
        row, token = account_services.app_token_register(
            user=request.user, title=form.cleaned_data["title"], ip=client_ip(request)
        )
        messages.success(request, f"Created the token “{row.title}”. Copy it now: it is shown only once.")
        return render_settings(request, new_token=(row, token))


class AppTokenRevokeView(UiView):
    sign_in_required = True
    http_method_names = ["post"]

    def post(self, request, token_uuid):
        row = account_selectors.app_token_by_uuid(user=request.user, token_uuid=str(token_uuid))
        if row is None:
            raise Http404("No such token")
        account_services.app_token_revoke(app_token=row, actor=request.user, ip=client_ip(request))
        messages.success(request, f"Revoked the token “{row.title}”.")
        return redirect("ui:user-settings")


class UserTimeMachineView(UiView):
    sign_in_required = True
    http_method_names = ["post"]

    def post(self, request):
        namespace = account_selectors.user_namespace(user=request.user)
        current = namespace.time_machine_seconds if namespace is not None else None
        form = forms.TimeMachineForm(request.POST, current=current)
        if not form.is_valid():
            return render_settings(request, status=400, time_machine_form=form)
        seconds = form.cleaned_data["seconds"]
        try:
            account_services.user_tag_expiration_set(user=request.user, seconds=seconds, ip=client_ip(request))
        except ValidationError as exc:
            form.add_error("seconds", exc.messages)
            return render_settings(request, status=400, time_machine_form=form)
        messages.success(request, f"Time machine set to {forms.describe_seconds(seconds)}.")
        return redirect("ui:user-settings")
