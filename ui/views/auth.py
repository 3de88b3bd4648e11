"""Sign in, sign out and sign up."""

from __future__ import annotations

import math

from django.contrib import messages
from django.contrib.auth import login, logout
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from rest_framework.throttling import ScopedRateThrottle

from accounts import selectors as account_selectors
from accounts import services as account_services
from ui import forms
from ui import selectors as ui_selectors
from ui.views.base import UiView, safe_next


class _SigninScope:
    # The same scope as POST /api/v1/signin: both count against one limit per client address.
    throttle_scope = "signin"


def signin_throttle_wait(request) -> int | None:
    """None when this attempt may go ahead, else the seconds to wait (SIGNIN_RATE)."""
    throttle = ScopedRateThrottle()
    if throttle.allow_request(request, _SigninScope):
        return None
    return max(1, math.ceil(throttle.wait() or 1))


class SigninView(UiView):
    template = "ui/signin.html"

    def get(self, request):
        if request.user.is_authenticated:
            return redirect(safe_next(request, reverse("ui:repository-list")))
        return self._render(request, forms.SigninForm())

    def post(self, request):
        form = forms.SigninForm(request.POST)
        wait = signin_throttle_wait(request)
        if wait is not None:
            form.is_valid()
            form.add_error(None, f"Too many sign-in attempts from your address. Try again in {wait} seconds.")
            return self._render(request, form, status=429)
        if not form.is_valid():
            return self._render(request, form, status=400)
        user = account_selectors.user_by_password(
            username=form.cleaned_data["username"], password=form.cleaned_data["password"]
        )
        if user is None:
            form.add_error(None, "Invalid username or password.")
            return self._render(request, form, status=400)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(safe_next(request, reverse("ui:repository-list")))

    def _render(self, request, form, status=200):
        context = {
            "form": form,
            "next": safe_next(request, ""),
            "signup_open": ui_selectors.user_creation_allowed(),
        }
        return render(request, self.template, context, status=status)


class SignoutView(UiView):
    http_method_names = ["post"]

    def post(self, request):
        logout(request)
        messages.info(request, "You are signed out.")
        return redirect("ui:repository-list")


class SignupView(UiView):
    template = "ui/signup.html"

    def get(self, request):
        if not ui_selectors.user_creation_allowed():
            return self._closed(request)
        return render(request, self.template, {"form": forms.SignupForm()})

    def post(self, request):
        if not ui_selectors.user_creation_allowed():
            return self._closed(request)
        form = forms.SignupForm(request.POST)
        if form.is_valid():
            try:
                user = account_services.user_create(
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password"],
                    email=form.cleaned_data["email"],
                )
            except ValidationError as exc:
                form.add_error("username", exc.messages)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(request, f"Welcome, {user.username}! Your account is ready.")
                return redirect("ui:repository-list")
        return render(request, self.template, {"form": form}, status=400)

    def _closed(self, request):
        return render(request, "ui/signup_closed.html", status=403)
