"""The base of every page: access errors turned into a redirect, a 403 page or a 404."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View

from ui.access import Forbidden, SignInRequired


def error_page(request, status: int, message: str, title: str = ""):
    titles = {400: "Bad request", 403: "Not allowed", 404: "Not found", 429: "Too many attempts"}
    return render(
        request, "ui/error.html", {"title": title or titles.get(status, "Error"), "message": message}, status=status
    )


def csrf_failure(request, reason: str = ""):
    """A form sent without a valid CSRF token (Django's CSRF_FAILURE_VIEW), in the UI's layout."""
    return render(request, "403_csrf.html", {"reason": reason}, status=403)


class UiView(View):
    """A page of the UI. ``sign_in_required`` sends anonymous visitors to the sign-in page;
    handlers raise ``SignInRequired``, ``Forbidden`` or ``Http404`` for access errors."""

    sign_in_required = False

    def dispatch(self, request, *args, **kwargs):
        try:
            if self.sign_in_required and not request.user.is_authenticated:
                raise SignInRequired()
            response = super().dispatch(request, *args, **kwargs)
        except SignInRequired:
            return redirect_to_login(request.get_full_path())
        except Forbidden as exc:
            return error_page(request, 403, exc.message)
        # Pages answer full or as an htmx fragment to the same URL: caches must keep both apart.
        patch_vary_headers(response, ("HX-Request", "HX-Target"))
        return response


def wants_fragment(request) -> bool:
    """An htmx request that swaps part of the page (not boosted navigation or a history
    restore, which need the whole page)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def htmx_target(request) -> str | None:
    """The id of the element a fragment-wanting htmx request will swap, if it has one."""
    return request.htmx.target if wants_fragment(request) else None


def safe_next(request, default: str) -> str:
    """The ``next`` parameter when it points back into this site, else ``default``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default
