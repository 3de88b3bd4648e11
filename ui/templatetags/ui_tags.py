from html import unescape

from django import template
from django.utils import timezone
from django.utils.html import strip_tags
from django.utils.text import Truncator

from ui.forms import describe_seconds
from ui.markdown import render_markdown

register = template.Library()


@register.filter
def markdown(text: str):
    """A repository description as sanitized HTML."""
    return render_markdown(text)


@register.filter
def markdown_excerpt(text: str, length: int = 120) -> str:
    """The description's first words as plain text (rendered, sanitized, tags dropped)."""
    plain = " ".join(strip_tags(render_markdown(text)).split())
    return Truncator(unescape(plain)).chars(length)


@register.filter
def duration(seconds: int) -> str:
    return describe_seconds(seconds)


@register.simple_tag(takes_context=True)
def tab_url(context, tab_slug: str) -> str:
    from ui.views.repository import repository_url

    return repository_url(context["repository"], tab_slug)


@register.filter
def isoformat(value) -> str:
    return timezone.localtime(value).isoformat() if value else ""


@register.filter
def short_digest(digest: str) -> str:
    """``sha256:`` and the first 12 hex digits of a manifest digest."""
    from ui.views.tags import short_digest as shorten

    return shorten(digest or "")
