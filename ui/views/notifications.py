"""Notifications in the web UI: the bell and the user's notices, and a repository's notification
rules (the Settings tab's list, the Create Notification form, the delivery log).

Everything about a repository's rules needs the admin role on it (readers and writers get 403,
others 404), as in the REST API. Views only read through ``notifications.selectors`` and write
through ``notifications.services``; the form checks nothing the service checks: it gathers the
inputs of the chosen event and method into the API's ``config`` / ``eventConfig`` and shows the
service's error next to the input it is about.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms as django_forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache

from notifications import events, selectors, services
from notifications.methods.base import ConfigError
from notifications.methods.email import normalized_email
from notifications.models import AuthorizedEmail, Event, Method, RepositoryNotification, UserNotification
from registry.models import Role
from ui import forms
from ui.access import RepositoryAccess, client_ip, principal_of, repository_access
from ui.views.base import UiView, safe_next
from ui.views.repository import repository_url

NOTICES_PER_PAGE = 20
DELIVERIES_PER_PAGE = 20
MAX_PAGE = 10**6
# htmx stops polling on this status (the bell of a page whose session has ended).
HTMX_STOP_POLLING = 286

BUILD_EVENTS = tuple(name for name in events.EVENTS if name.startswith("build_"))
TARGET_KINDS = [("user", "User"), ("team", "Team"), ("org", "Organization")]


def _page(request) -> int:
    try:
        return min(max(int(request.GET.get("page", 0)), 0), MAX_PAGE)
    except (TypeError, ValueError):
        return 0


# --- The bell and the user's notices ----------------------------------------------------------


def _url_or_empty(name: str, **kwargs) -> str:
    """A link from a notice's metadata, or none when the metadata does not make one."""
    if not all(kwargs.values()):
        return ""
    try:
        return reverse(name, kwargs=kwargs)
    except NoReverseMatch:
        return ""


def notice_view(row: UserNotification) -> dict:
    """What the list shows of a notice: one line, details, a link, and a level for its badge."""
    metadata = row.metadata or {}
    if row.kind == services.NOTICE_DISABLED:
        label = metadata.get("title") or dict(Method.choices).get(metadata.get("method"), "notification")
        link = _url_or_empty(
            "ui:repository-notification",
            repository=metadata.get("repository"),
            notification_uuid=metadata.get("notification_uuid"),
        )
        return {
            "row": row,
            "level": "error",
            "summary": f"The notification “{label}” of {metadata.get('repository', 'a repository')} was disabled "
            f"after {metadata.get('number_of_failures', '?')} failed attempts",
            "details": [("Last error", str(metadata.get("reason", "")))],
            "link": link,
            "link_label": "Delivery log",
        }
    try:
        message = events.get_event(row.kind).message(metadata)
    except (events.EventDataError, KeyError, TypeError, AttributeError):
        # A notice from an older payload shape: still listed, and still dismissable.
        return {"row": row, "level": "info", "summary": row.kind, "details": [], "link": "", "link_label": ""}
    link = _url_or_empty("ui:repository", repository=metadata.get("repository")) if row.repository_id else ""
    return {
        "row": row,
        "level": message.level,
        "summary": message.summary,
        "details": message.details,
        "link": link,
        "link_label": "Open repository",
    }


@method_decorator(never_cache, name="dispatch")
class UserNotificationListView(UiView):
    """``/user/notifications``: unread notices newest first (``?all=1`` with dismissed ones)."""

    sign_in_required = True

    def get(self, request):
        page = _page(request)
        show_all = request.GET.get("all") == "1"
        rows, more = selectors.user_notifications(
            user=request.user, page=page, limit=NOTICES_PER_PAGE, include_dismissed=show_all
        )
        base = {"all": "1"} if show_all else {}
        context = {
            "notices": [notice_view(row) for row in rows],
            "show_all": show_all,
            "page": page,
            "newer_url": f"?{urlencode({**base, 'page': page - 1})}" if page > 0 else None,
            "older_url": f"?{urlencode({**base, 'page': page + 1})}" if more else None,
            "here": request.get_full_path(),
            "bell_count": selectors.user_notification_unread_count(user=request.user),
        }
        return render(request, "ui/notifications.html", context)


@method_decorator(never_cache, name="dispatch")
class UserNotificationBellView(UiView):
    """The bell with its unread count, which htmx loads into the header of every page (so pages
    themselves do not count) and refreshes every minute."""

    def get(self, request):
        if not request.user.is_authenticated:
            return HttpResponse(status=HTMX_STOP_POLLING)
        count = selectors.user_notification_unread_count(user=request.user)
        return render(request, "ui/notifications_bell.html", {"count": count})


class UserNotificationDismissView(UiView):
    """POST ``dismissed=1`` (Dismiss) or ``dismissed=0`` (Mark unread) on one of the user's notices."""

    sign_in_required = True
    http_method_names = ["post"]

    def post(self, request, notice_uuid):
        notice = selectors.user_notification_by_uuid(user=request.user, notification_uuid=notice_uuid)
        if notice is None:
            raise Http404("No such notification")
        dismissed = request.POST.get("dismissed", "1") != "0"
        services.user_notification_set_dismissed(notification=notice, dismissed=dismissed)
        messages.success(request, "Dismissed the notification." if dismissed else "Marked the notification unread.")
        return redirect(safe_next(request, reverse("ui:user-notifications")))


# --- A repository's rules: what the list shows ---------------------------------------------------


def target_summary(notification: RepositoryNotification) -> str:
    """Where a rule sends, in words; secrets only in their redacted form (the API's public config)."""
    config = services.notification_public_config(notification)
    method = notification.method
    if method == Method.QUAY_NOTIFICATION:
        target = config.get("target") or {}
        kind = dict(TARGET_KINDS).get(target.get("kind"), "")
        return f"{kind} {target.get('name', '')}".strip()
    if method == Method.EMAIL:
        return config.get("email", "")
    if method in (Method.WEBHOOK, Method.SLACK):
        return config.get("url", "")
    if method == Method.FLOWDOCK:
        return f"Flow token {config.get('flow_api_token', '…')}"
    if method == Method.HIPCHAT:
        return f"Room {config.get('room_id', '')}"
    return ""


def event_filter_summary(notification: RepositoryNotification) -> str:
    config = notification.event_config or {}
    if notification.event in BUILD_EVENTS and config.get("ref-regex"):
        return f"refs matching {config['ref-regex']}"
    if notification.event == Event.VULNERABILITY_FOUND and config.get("level") not in (None, ""):
        try:
            return f"severity {events.minimum_severity(config['level'])} or higher"
        except events.EventConfigError:
            return ""
    return ""


def notification_row(notification: RepositoryNotification) -> dict:
    return {
        "notification": notification,
        "title": notification.title or f"{notification.get_method_display()} on {notification.get_event_display()}",
        "target": target_summary(notification),
        "event_filter": event_filter_summary(notification),
    }


def settings_notifications(repository) -> list[dict]:
    """The Settings tab's notification list (called by ``ui.views.repository.settings_context``)."""
    return [notification_row(row) for row in selectors.notifications_of(repository=repository)]


def _admin_access(request, repository: str) -> RepositoryAccess:
    return repository_access(request, repository, need=Role.ADMIN)


def _rule(access: RepositoryAccess, notification_uuid) -> RepositoryNotification:
    rule = selectors.notification_by_uuid(repository=access.repository, notification_uuid=notification_uuid)
    if rule is None:
        raise Http404("No such notification")
    return rule


def log_url(repository, notification: RepositoryNotification) -> str:
    return reverse(
        "ui:repository-notification",
        kwargs={"repository": repository.full_name, "notification_uuid": notification.uuid},
    )


def settings_url(repository) -> str:
    return repository_url(repository, "settings") + "#settings-notifications"


# --- The Create Notification form ----------------------------------------------------------------


class NotificationForm(forms.UiForm):
    """The inputs of every event and method; the view sends only those of the chosen ones."""

    event = django_forms.ChoiceField(label="Event", choices=Event.choices)
    ref_regex = django_forms.CharField(
        label="Only builds of git refs matching",
        required=False,
        help_text="A regular expression such as ^refs/heads/main$; empty for every build.",
    )
    level = django_forms.ChoiceField(
        label="Minimum severity",
        required=False,
        choices=[("", "Any severity"), *[(level, level) for level in reversed(events.SEVERITIES)]],
    )
    method = django_forms.ChoiceField(label="Method", choices=Method.choices)
    target_kind = django_forms.ChoiceField(label="Notify", choices=TARGET_KINDS, required=False)
    target_name = django_forms.CharField(
        label="User, team or organization name",
        required=False,
        help_text="A team of this repository's organization, or the organization itself (its admins).",
    )
    email = django_forms.CharField(
        label="E-mail address",
        required=False,
        help_text="The address must confirm it wants this repository's notifications first.",
        widget=django_forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    webhook_url = django_forms.CharField(
        label="Webhook URL", required=False, widget=django_forms.URLInput(attrs={"autocomplete": "off"})
    )
    webhook_template = django_forms.CharField(
        label="Body template (optional)",
        required=False,
        help_text="JSON with ${...} placeholders from the event, such as ${repository}; empty sends the event's JSON.",
        widget=django_forms.Textarea(attrs={"rows": 4}),
    )
    slack_url = django_forms.CharField(
        label="Slack incoming webhook URL", required=False, widget=django_forms.URLInput(attrs={"autocomplete": "off"})
    )
    flowdock_token = django_forms.CharField(
        label="Flow API token", required=False, widget=django_forms.TextInput(attrs={"autocomplete": "off"})
    )
    hipchat_room = django_forms.CharField(label="Room ID", required=False)
    hipchat_token = django_forms.CharField(
        label="Room notification token", required=False, widget=django_forms.TextInput(attrs={"autocomplete": "off"})
    )
    title = django_forms.CharField(label="Title", required=False, max_length=services.TITLE_MAX)

    def event_config(self) -> dict:
        data, event = self.cleaned_data, self.cleaned_data["event"]
        if event in BUILD_EVENTS and data["ref_regex"]:
            return {"ref-regex": data["ref_regex"]}
        if event == Event.VULNERABILITY_FOUND and data["level"]:
            return {"level": data["level"]}
        return {}

    def config(self) -> dict:
        data, method = self.cleaned_data, self.cleaned_data["method"]
        if method == Method.QUAY_NOTIFICATION:
            return {"target": {"kind": data["target_kind"], "name": data["target_name"]}}
        if method == Method.EMAIL:
            return {"email": data["email"]}
        if method == Method.WEBHOOK:
            return {"url": data["webhook_url"], "template": data["webhook_template"]}
        if method == Method.SLACK:
            return {"url": data["slack_url"]}
        if method == Method.FLOWDOCK:
            return {"flow_api_token": data["flowdock_token"]}
        return {"room_id": data["hipchat_room"], "notification_token": data["hipchat_token"]}

    # The input a config error is shown next to.
    CONFIG_FIELD = {
        Method.QUAY_NOTIFICATION: "target_name",
        Method.EMAIL: "email",
        Method.WEBHOOK: "webhook_url",
        Method.SLACK: "slack_url",
        Method.FLOWDOCK: "flowdock_token",
        Method.HIPCHAT: "hipchat_token",
    }

    def add_service_error(self, error: services.NotificationError) -> None:
        data = self.cleaned_data
        if error.part == "config":
            field = self.CONFIG_FIELD[data["method"]]
            if data["method"] == Method.WEBHOOK and "template" in str(error).lower():
                field = "webhook_template"
        elif error.part == "event_config":
            field = "level" if data["event"] == Event.VULNERABILITY_FOUND else "ref_regex"
        elif error.part in ("event", "method", "title"):
            field = error.part
        else:
            field = None
        self.add_error(field, str(error))


def email_state(repository, email: str) -> dict | None:
    """Whether ``email`` may receive this repository's notifications: ``confirmed``, ``pending``
    (a link was sent) or ``unknown``; None for an empty or invalid address."""
    try:
        address = normalized_email(email)
    except ConfigError:
        return None
    record: AuthorizedEmail | None = selectors.authorized_email(repository=repository, email=address)
    if record is None:
        state = "unknown"
    else:
        state = "confirmed" if record.confirmed else "pending"
    return {"email": address, "state": state, "record": record}


def render_create(request, access: RepositoryAccess, form: NotificationForm, *, status: int = 200):
    email = form.data.get("email", "") if form.is_bound else ""
    context = {
        "repository": access.repository,
        "access": access,
        "form": form,
        "email_state": email_state(access.repository, email) if email else None,
        "build_events": " ".join(BUILD_EVENTS),
        "tls_client_cert": bool(settings.NOTIFICATION_TLS_CERT_FILE),
    }
    return render(request, "ui/repository/notifications_new.html", context, status=status)


@method_decorator(never_cache, name="dispatch")
class NotificationCreateView(UiView):
    """``/-/notifications/new``: the form; its POST creates the rule, or (``action=verify``) mails
    the e-mail address its confirmation link and comes back to the form with the input kept."""

    sign_in_required = True

    def get(self, request, repository):
        access = _admin_access(request, repository)
        initial = {"event": request.GET.get("event") or Event.REPO_PUSH, "method": request.GET.get("method")}
        return render_create(request, access, NotificationForm(initial=initial))

    def post(self, request, repository):
        access = _admin_access(request, repository)
        form = NotificationForm(request.POST)
        if not form.is_valid():
            return render_create(request, access, form, status=400)
        if request.POST.get("action") == "verify":
            return self.verify(request, access, form)
        try:
            rule, config = services.notification_create(
                repository=access.repository,
                event=form.cleaned_data["event"],
                method=form.cleaned_data["method"],
                config=form.config(),
                event_config=form.event_config(),
                title=form.cleaned_data["title"],
                principal=principal_of(request),
                ip=client_ip(request),
            )
        except services.NotificationError as exc:
            form.add_service_error(exc)
            return render_create(request, access, form, status=400)
        if rule.method == Method.WEBHOOK:
            # The signing secret is shown in this answer only; it never goes into a cookie or a URL.
            context = {"repository": access.repository, "row": notification_row(rule), "secret": config["secret"]}
            return render(request, "ui/repository/notifications_created.html", context)
        messages.success(request, f"Created the notification “{notification_row(rule)['title']}”.")
        return redirect(settings_url(access.repository))

    def verify(self, request, access: RepositoryAccess, form: NotificationForm):
        try:
            email = normalized_email(form.cleaned_data["email"])
        except ConfigError as exc:
            form.add_error("email", str(exc))
            return render_create(request, access, form, status=400)
        record = services.authorized_email_request(
            repository=access.repository, email=email, principal=principal_of(request), ip=client_ip(request)
        )
        if record.confirmed:
            messages.info(request, f"{email} is already confirmed for this repository.")
        else:
            messages.success(
                request, f"Sent a confirmation link to {email}. Create the notification once it has been opened."
            )
        return render_create(request, access, form)


class NotificationEmailStateView(UiView):
    """The e-mail address's confirmation state under its input (htmx, as it is typed)."""

    sign_in_required = True

    def get(self, request, repository):
        access = _admin_access(request, repository)
        state = email_state(access.repository, request.GET.get("email", ""))
        return render(request, "ui/repository/notifications_email_state.html", {"email_state": state})


# --- One rule: its delivery log and its actions ------------------------------------------------------


@method_decorator(never_cache, name="dispatch")
class NotificationLogView(UiView):
    """``/-/notifications/<uuid>``: the rule, its state and its deliveries with their attempts."""

    sign_in_required = True

    def get(self, request, repository, notification_uuid):
        access = _admin_access(request, repository)
        rule = _rule(access, notification_uuid)
        page = _page(request)
        deliveries, more = selectors.deliveries_of(
            notification=rule, page=page, limit=DELIVERIES_PER_PAGE, with_attempts=True
        )
        context = {
            "repository": access.repository,
            "access": access,
            "row": notification_row(rule),
            "deliveries": deliveries,
            "page": page,
            "newer_url": f"?page={page - 1}" if page > 0 else None,
            "older_url": f"?page={page + 1}" if more else None,
            "disable_after": settings.NOTIFICATION_DISABLE_AFTER_FAILURES,
        }
        return render(request, "ui/repository/notifications_log.html", context)


class _RuleAction(UiView):
    """A POST on one rule by a repository admin; the subclass calls the service."""

    sign_in_required = True
    http_method_names = ["post"]

    def post(self, request, repository, notification_uuid, **kwargs):
        access = _admin_access(request, repository)
        return self.act(request, access, _rule(access, notification_uuid), **kwargs)

    def act(self, request, access: RepositoryAccess, rule: RepositoryNotification, **kwargs):
        raise NotImplementedError


class NotificationDeleteView(_RuleAction):
    def act(self, request, access, rule):
        title = notification_row(rule)["title"]
        services.notification_delete(notification=rule, principal=principal_of(request), ip=client_ip(request))
        messages.success(request, f"Deleted the notification “{title}” and its delivery log.")
        return redirect(settings_url(access.repository))


class NotificationResetView(_RuleAction):
    def act(self, request, access, rule):
        services.notification_reset(notification=rule, principal=principal_of(request), ip=client_ip(request))
        messages.success(request, f"Reset the failures of “{notification_row(rule)['title']}”; it is enabled.")
        return redirect(safe_next(request, settings_url(access.repository)))


class NotificationTestView(_RuleAction):
    def act(self, request, access, rule):
        delivery = services.notification_test(notification=rule)
        messages.success(request, f"Queued a test delivery with sample data ({delivery.uuid}).")
        return redirect(log_url(access.repository, rule))


class DeliveryRedeliverView(_RuleAction):
    def act(self, request, access, rule, delivery_uuid):
        delivery = selectors.delivery_by_uuid(notification=rule, delivery_uuid=delivery_uuid)
        if delivery is None:
            raise Http404("No such delivery")
        delivery.notification = rule
        try:
            services.delivery_redeliver(delivery=delivery)
        except services.NotificationError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Queued delivery {delivery.uuid} again, with the same id.")
        return redirect(safe_next(request, log_url(access.repository, rule)))
