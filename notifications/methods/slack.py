"""Slack: a message to an incoming webhook, with the summary linked to the repository or build
page and the details as attachment fields."""

from __future__ import annotations

from notifications.methods.base import Context, Method, Outcome, checked_url, post_json, redact_url
from notifications.models import Method as MethodName

COLORS = {"info": "#439fe0", "success": "good", "warning": "warning", "error": "danger"}


def escape(text: str) -> str:
    """Slack's three control characters in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(context: Context) -> dict:
    message = context.message
    prefix = "[test] " if context.is_test else ""
    headline = (
        f"{prefix}<{message.link}|{escape(message.summary)}>" if message.link else escape(prefix + message.summary)
    )
    return {
        "text": headline,
        "attachments": [
            {
                "fallback": prefix + message.summary,
                "color": COLORS.get(message.level, COLORS["info"]),
                "fields": [
                    {"title": label, "value": escape(value), "short": len(value) <= 40}
                    for label, value in message.details
                ],
            }
        ],
    }


class SlackMethod(Method):
    name = MethodName.SLACK
    # The incoming-webhook URL is the credential: whoever has it can post to the channel.
    secret_fields = ("url",)

    def clean(self, *, repository, config):
        return {"url": checked_url(config, "url", "Slack webhook URL")}

    def redact(self, key, value):
        return redact_url(value)

    def send(self, context: Context) -> Outcome:
        return post_json(context.config["url"], slack_message(context))
