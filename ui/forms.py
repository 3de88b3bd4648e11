"""Forms of the web UI. They check input and phrase errors; the writes are services' work.

Every form keeps what the user typed when it comes back with an error (Django re-renders bound
fields), and each error says what to change.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.forms import PasswordChangeForm
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Namespace, Team, User
from registry import errors as registry_errors
from registry import names
from registry import selectors as registry_selectors
from registry.models import Repository, Role

REPOSITORY_NAME_HELP = "Lowercase letters, digits and the separators . _ -; use / for a nested name such as team/app."
NAMESPACE_NAME_HELP = "2-255 lowercase letters, digits and the separators . _ -"
ROBOT_NAME_HELP = "2-255 lowercase letters, digits and the separators . _ -; the robot is called <namespace>+<name>."


class UiFormMixin:
    """Labels without Django's trailing colon, each field in a ``<div class="field">`` of its own
    (label, help, errors with their ARIA links, input: Django's own field template inside)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.template_name = "ui/_field.html"


class UiForm(UiFormMixin, forms.Form):
    pass


class PasswordForm(UiFormMixin, PasswordChangeForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # One form among several on the settings page: it must not take the focus on load.
        self.fields["old_password"].widget.attrs.pop("autofocus", None)


def describe_seconds(seconds: int) -> str:
    """``2 weeks``, ``1 day``, ``None``: a time machine window in words."""
    if seconds == 0:
        return "None"
    for unit, size in (("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


class SigninForm(UiForm):
    username = forms.CharField(max_length=255, widget=forms.TextInput(attrs={"autocomplete": "username"}))
    password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


def _validate_new_namespace_name(name: str) -> None:
    try:
        account_services.validate_namespace_name(name)
    except ValidationError:
        raise ValidationError(f"“{name}” is not a valid name: use {NAMESPACE_NAME_HELP}.") from None
    if Namespace.objects.filter(name=name).exists() or User.objects.filter(username=name).exists():
        raise ValidationError(f"The name “{name}” is already taken by a user or an organization.")


class SignupForm(UiForm):
    username = forms.CharField(
        max_length=255, help_text=NAMESPACE_NAME_HELP, widget=forms.TextInput(attrs={"autocomplete": "username"})
    )
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password_again = forms.CharField(
        label="Password (again)", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean_username(self):
        name = self.cleaned_data["username"]
        _validate_new_namespace_name(name)
        return name

    def clean(self):
        data = super().clean()
        password, again = data.get("password"), data.get("password_again")
        if password and again and password != again:
            self.add_error("password_again", "The two passwords differ.")
        elif password:
            try:
                password_validation.validate_password(password, User(username=data.get("username") or ""))
            except ValidationError as exc:
                self.add_error("password", exc)
        return data


class RepositoryCreateForm(UiForm):
    kind = forms.ChoiceField(
        label="Repository type",
        choices=[
            (Repository.Kind.IMAGE, "Container Image Repository"),
            (Repository.Kind.APPLICATION, "Application Repository"),
        ],
        initial=Repository.Kind.IMAGE,
        widget=forms.RadioSelect,
    )
    # A text field behind a select: a namespace the user may not create in gets "no permission",
    # not "select a valid choice".
    namespace = forms.CharField(max_length=255, widget=forms.Select)
    name = forms.CharField(label="Repository name", max_length=255, help_text=REPOSITORY_NAME_HELP)
    visibility = forms.ChoiceField(
        choices=[
            (Repository.Visibility.PUBLIC, "Public: anyone can see and pull from this repository"),
            (Repository.Visibility.PRIVATE, "Private: you choose who can see and pull from it"),
        ],
        initial=Repository.Visibility.PRIVATE,
        widget=forms.RadioSelect,
    )
    description = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Markdown; shown on the repository's Information tab.",
    )

    def __init__(self, *args, namespaces: list[Namespace], **kwargs):
        super().__init__(*args, **kwargs)
        self.namespaces = {ns.name: ns for ns in namespaces}
        self.fields["namespace"].widget.choices = [
            (ns.name, f"{ns.name} (organization)" if ns.is_organization else ns.name) for ns in namespaces
        ]

    def clean_namespace(self):
        name = self.cleaned_data["namespace"]
        if name not in self.namespaces:
            raise ValidationError(f"You do not have permission to create repositories in the namespace “{name}”.")
        return self.namespaces[name]

    def clean(self):
        data = super().clean()
        namespace, name = data.get("namespace"), data.get("name")
        if namespace is None or not name:
            return data
        try:
            names.split_repository_name(f"{namespace.name}/{name}")
        except registry_errors.RegistryError:
            self.add_error("name", f"“{name}” is not a valid repository name. {REPOSITORY_NAME_HELP}")
            return data
        if registry_selectors.repository_by_name(f"{namespace.name}/{name}") is not None:
            self.add_error("name", f"The repository {namespace.name}/{name} already exists.")
        return data


class OrganizationCreateForm(UiForm):
    name = forms.CharField(label="Organization name", max_length=255, help_text=NAMESPACE_NAME_HELP)
    email = forms.EmailField(required=False, help_text="A contact address for the organization (optional).")

    def clean_name(self):
        name = self.cleaned_data["name"]
        _validate_new_namespace_name(name)
        return name


class DescriptionForm(UiForm):
    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 8}), help_text="Markdown is supported."
    )


class VisibilityForm(UiForm):
    visibility = forms.ChoiceField(
        choices=[(Repository.Visibility.PUBLIC, "Public"), (Repository.Visibility.PRIVATE, "Private")],
        widget=forms.RadioSelect,
    )


ROLE_CHOICES = [(Role.READ, "Read"), (Role.WRITE, "Write"), (Role.ADMIN, "Admin")]


class PermissionForm(UiForm):
    """Grant (or change) a role to a user, a robot or a team."""

    kind = forms.ChoiceField(label="Grant to", choices=[("user", "User or robot"), ("team", "Team")])
    name = forms.CharField(
        max_length=255,
        help_text="A user name, a robot (namespace+name) or a team name.",
        widget=forms.TextInput(attrs={"list": "permission-candidates", "autocomplete": "off"}),
    )
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=Role.READ)


class PermissionDeleteForm(UiForm):
    kind = forms.ChoiceField(choices=[("user", "user"), ("team", "team")], widget=forms.HiddenInput)
    name = forms.CharField(max_length=255, widget=forms.HiddenInput)


class RepositoryDeleteForm(UiForm):
    confirm = forms.CharField(
        label="Type the repository's full name to confirm",
        max_length=600,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args, repository: Repository, **kwargs):
        super().__init__(*args, **kwargs)
        self.repository = repository

    def clean_confirm(self):
        value = self.cleaned_data["confirm"].strip()
        if value != self.repository.full_name:
            raise ValidationError(f"Type {self.repository.full_name} exactly to delete this repository.")
        return value


class AppTokenForm(UiForm):
    title = forms.CharField(max_length=255, help_text="What the token is for, such as “laptop” or “CI”.")


class TimeMachineForm(UiForm):
    """One of TAG_EXPIRATION_OPTIONS, the windows the services accept."""

    seconds = forms.TypedChoiceField(
        label="Time machine",
        coerce=int,
        help_text="How long deleted or moved tags stay restorable before garbage collection may reclaim them.",
    )

    def __init__(self, *args, current: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["seconds"].choices = [
            (seconds, describe_seconds(seconds)) for seconds in settings.TAG_EXPIRATION_OPTIONS
        ]
        if current is not None:
            self.fields["seconds"].initial = current
            if current not in settings.TAG_EXPIRATION_OPTIONS:
                self.fields["seconds"].help_text += f" Now {describe_seconds(current)}, which is no longer an option."


class OrganizationEmailForm(UiForm):
    email = forms.EmailField(required=False)


class TeamCreateForm(UiForm):
    name = forms.CharField(label="Team name", max_length=255, help_text="Lowercase letters, digits and . _ -")
    role = forms.ChoiceField(choices=Team.Role.choices, initial=Team.Role.MEMBER)
    description = forms.CharField(required=False, max_length=2000)

    def __init__(self, *args, organization: Namespace | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization

    def clean_name(self):
        name = self.cleaned_data["name"]
        if not account_services.ROBOT_SHORT_RE.fullmatch(name):
            raise ValidationError(f"“{name}” is not a valid team name: use lowercase letters, digits and . _ -")
        if self.organization is not None and Team.objects.filter(organization=self.organization, name=name).exists():
            raise ValidationError(f"The team {name} already exists in {self.organization.name}.")
        return name


class TeamUpdateForm(UiForm):
    role = forms.ChoiceField(choices=Team.Role.choices)
    description = forms.CharField(required=False, max_length=2000)


class TeamMemberForm(UiForm):
    username = forms.CharField(
        label="User or robot",
        max_length=255,
        widget=forms.TextInput(attrs={"list": "member-candidates", "autocomplete": "off"}),
    )


class RobotCreateForm(UiForm):
    short_name = forms.CharField(label="Robot name", max_length=255, help_text=ROBOT_NAME_HELP)
    description = forms.CharField(required=False, max_length=2000)


# --- Tags -----------------------------------------------------------------------------------------

TAG_NAME_HELP = "Letters, digits and . _ - (not starting with . or -), at most 128 characters."
# A page of the Tags tab holds 50 tags; a multi-select delete never names more than this.
MAX_TAGS_PER_DELETE = 500


def _clean_tag_name(value: str) -> str:
    name = value.strip()
    if not names.TAG_RE.match(name):
        raise ValidationError(f"“{name}” is not a valid tag name. {TAG_NAME_HELP}")
    return name


class TagAddForm(UiForm):
    """Add New Tag: a name for the image another tag points at. When the name is already a tag
    of another image, the view asks to confirm the move first (``confirm_move`` then comes set)."""

    name = forms.CharField(
        label="New tag name",
        max_length=255,
        help_text=TAG_NAME_HELP + " An existing name is moved to this image, after you confirm.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True, "spellcheck": "false"}),
    )
    manifest_digest = forms.CharField(max_length=200, widget=forms.HiddenInput)
    source = forms.CharField(max_length=255, widget=forms.HiddenInput)
    confirm_move = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean_name(self):
        return _clean_tag_name(self.cleaned_data["name"])


class TagMoveForm(UiForm):
    """Move Tag: point a tag at another image of the repository, named by one of its tags or its digest."""

    tag = forms.CharField(max_length=255, widget=forms.HiddenInput)
    target = forms.CharField(
        label="Move to the image of",
        max_length=255,
        help_text="Another tag of this repository (such as latest) or a manifest digest (sha256:…).",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True, "spellcheck": "false"}),
    )

    def clean_target(self):
        return self.cleaned_data["target"].strip()


class TagExpirationForm(UiForm):
    """Change Expiration: an empty date clears the expiration."""

    tag = forms.CharField(max_length=255, widget=forms.HiddenInput)
    expiration = forms.DateTimeField(
        label="Expires at",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "autofocus": True}, format="%Y-%m-%dT%H:%M"),
        help_text="Leave it empty for a tag that never expires.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        zone = timezone.get_current_timezone_name()
        self.fields["expiration"].label = f"Expires at ({zone})"


class TagListField(forms.Field):
    """Several tag names from one parameter (the checkboxes of the Tags tab)."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"required": "Choose at least one tag."}

    def to_python(self, value):
        if not value:
            return []
        values = value if isinstance(value, list | tuple) else [value]
        return list(dict.fromkeys(str(item).strip() for item in values if str(item).strip()))

    def validate(self, value):
        super().validate(value)
        if len(value) > MAX_TAGS_PER_DELETE:
            raise ValidationError(f"Choose at most {MAX_TAGS_PER_DELETE} tags at a time.")
        for name in value:
            _clean_tag_name(name)


class TagDeleteForm(UiForm):
    tags = TagListField()


class TagHistoryEntryForm(UiForm):
    """Restore (or, for admins, permanently delete) a history entry: a tag name and a manifest."""

    tag = forms.CharField(max_length=255, widget=forms.HiddenInput)
    manifest_digest = forms.CharField(max_length=200, widget=forms.HiddenInput)

    def clean_tag(self):
        return _clean_tag_name(self.cleaned_data["tag"])
