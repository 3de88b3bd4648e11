"""HipChat: a room notification (API v2 ``POST /v2/room/<room>/notification``), the token in the
Authorization header rather than the URL. NOTIFICATION_HIPCHAT_URL points at a HipChat Server."""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings

from notifications.methods.base import Context, Method, Outcome, post_json, required_string
from notifications.models import Method as MethodName

COLORS = {"info": "gray", "success": "green", "warning": "yellow", "error": "red"}
MESSAGE_MAX = 10000  # HipChat's limit on a notification's message


def hipchat_message(context: Context) -> dict:
    level = context.message.level
    return {
        "color": COLORS.get(level, "gray"),
        "message": context.html()[:MESSAGE_MAX],
        "message_format": "html",
        # Only failures ping the room.
        "notify": level == "error",
        "from": "Container registry",
    }


class HipchatMethod(Method):
    name = MethodName.HIPCHAT
    secret_fields = ("notification_token",)

    def clean(self, *, repository, config):
        room = config.get("room_id")
        if isinstance(room, int) and not isinstance(room, bool):
            room = str(room)
        room = required_string({"room_id": room}, "room_id", "HipChat room ID", max_length=100)
        token = required_string(config, "notification_token", "HipChat room notification token", max_length=255)
        return {"room_id": room, "notification_token": token}

    def send(self, context: Context) -> Outcome:
        base = settings.NOTIFICATION_HIPCHAT_URL.rstrip("/")
        url = f"{base}/v2/room/{quote(context.config['room_id'], safe='')}/notification"
        headers = {"Authorization": f"Bearer {context.config['notification_token']}"}
        return post_json(url, hipchat_message(context), headers=headers)
