"""The repository list, the New Repository page and stars."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.db import IntegrityError
from django.shortcuts import redirect, render
from django.urls import reverse

from registry import errors as registry_errors
from registry import services as registry_services
from registry.models import Repository, Role
from ui import forms
from ui import selectors as ui_selectors
from ui.access import client_ip, is_superuser, principal_of, repository_access
from ui.views.base import UiView, htmx_target, safe_next, wants_fragment

RESULTS_ID = "repository-results"


class RepositoryListView(UiView):
    """``/``: Name, Visibility, Size, Last Modified; filter by namespace, search, starred."""

    def get(self, request):
        user = request.user if request.user.is_authenticated else None
        namespace = request.GET.get("namespace", "").strip()
        search = request.GET.get("q", "").strip()[:255]
        starred = request.GET.get("starred") == "1" and user is not None
        query = ui_selectors.repositories_for_listing(
            user=user, superuser=is_superuser(request), namespace=namespace, search=search, starred=starred
        )
        page = ui_selectors.repository_page(query, number=request.GET.get("page"))
        context = {
            "page": page,
            "rows": ui_selectors.repository_rows(page_rows=list(page.object_list), user=user),
            "namespace": namespace,
            "search": search,
            "starred": starred,
            "namespaces": ui_selectors.namespaces_for_filter(user=user) if user else [],
            "filter_query": _filter_query(namespace, search, starred),
        }
        template = "ui/repository_list.html"
        if htmx_target(request) == RESULTS_ID:
            template = "ui/_repository_results.html"
        return render(request, template, context)


def _filter_query(namespace: str, search: str, starred: bool) -> str:
    params = {key: value for key, value in (("namespace", namespace), ("q", search)) if value}
    if starred:
        params["starred"] = "1"
    return urlencode(params)


class RepositoryCreateView(UiView):
    """The + menu's New Repository: an image or application repository, empty at first."""

    sign_in_required = True
    template = "ui/repository_new.html"

    def get(self, request):
        namespaces = ui_selectors.namespaces_for_creation(user=request.user)
        initial = {
            "kind": request.GET.get("kind")
            if request.GET.get("kind") in Repository.Kind.values
            else Repository.Kind.IMAGE,
            "namespace": request.GET.get("namespace") or request.user.username,
        }
        form = forms.RepositoryCreateForm(initial=initial, namespaces=namespaces)
        return render(request, self.template, {"form": form})

    def post(self, request):
        form = forms.RepositoryCreateForm(
            request.POST, namespaces=ui_selectors.namespaces_for_creation(user=request.user)
        )
        if form.is_valid():
            values = form.cleaned_data
            try:
                repository = registry_services.repository_create(
                    namespace=values["namespace"],
                    name=values["name"],
                    principal=principal_of(request),
                    visibility=values["visibility"],
                    kind=values["kind"],
                    description=values["description"],
                    ip=client_ip(request),
                )
            except IntegrityError:
                form.add_error("name", f"The repository {values['namespace'].name}/{values['name']} already exists.")
            except registry_errors.Denied:
                form.add_error(
                    "namespace",
                    f"You do not have permission to create repositories in the namespace “{values['namespace'].name}”.",
                )
            else:
                messages.success(request, f"Created the repository {repository.full_name}.")
                return redirect("ui:repository", repository=repository.full_name)
        return render(request, self.template, {"form": form}, status=400)


class RepositoryStarView(UiView):
    """Star or unstar (``action`` star/unstar) a repository the user can see."""

    sign_in_required = True
    http_method_names = ["post"]

    def post(self, request, repository):
        access = repository_access(request, repository, need=Role.READ)
        starred = request.POST.get("action") != "unstar"
        if starred:
            registry_services.star_add(user=request.user, repository=access.repository)
        else:
            registry_services.star_remove(user=request.user, repository=access.repository)
        if wants_fragment(request):
            context = {
                "repository": access.repository,
                "starred": starred,
                "star_next": request.htmx.current_url_abs_path,
            }
            return render(request, "ui/_star_button.html", context)
        return redirect(
            safe_next(request, reverse("ui:repository", kwargs={"repository": access.repository.full_name}))
        )
