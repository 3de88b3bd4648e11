"""The delivery methods, one module each, found by name through ``METHODS``."""

from notifications.methods.base import Method
from notifications.methods.email import EmailMethod
from notifications.methods.flowdock import FlowdockMethod
from notifications.methods.hipchat import HipchatMethod
from notifications.methods.quay import QuayNotificationMethod
from notifications.methods.slack import SlackMethod
from notifications.methods.webhook import WebhookMethod

METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        QuayNotificationMethod(),
        EmailMethod(),
        WebhookMethod(),
        SlackMethod(),
        FlowdockMethod(),
        HipchatMethod(),
    )
}


def get_method(name: str) -> Method:
    return METHODS[name]
