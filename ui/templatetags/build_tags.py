"""Template helpers of the build pages (ui/views/builds.py)."""

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def builds_enabled(context) -> bool:
    """Whether Dockerfile builds are on: the ``+`` menu offers New Dockerfile Build only then.
    On the repository page the tab list already says so (no second look at the settings)."""
    tabs = context.get("tabs")
    if tabs is not None:
        return any(tab.slug == "builds" for tab in tabs)
    from ui.views.builds import builds_enabled as enabled

    return enabled()
