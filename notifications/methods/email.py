"""E-mail: a text and an HTML body to an address the repository has verified first."""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.template.loader import render_to_string

from notifications import selectors
from notifications.methods.base import ConfigError, Context, Method, Outcome, PermanentError, RetryableError
from notifications.models import Method as MethodName


def normalized_email(value) -> str:
    if not isinstance(value, str):
        raise ConfigError("Missing e-mail address")
    email = value.strip()
    try:
        validate_email(email)
    except ValidationError:
        raise ConfigError(f"Invalid e-mail address {email!r}") from None
    return email.lower()


class EmailMethod(Method):
    name = MethodName.EMAIL

    def clean(self, *, repository, config):
        email = normalized_email(config.get("email"))
        if not selectors.email_is_authorized(repository=repository, email=email):
            raise ConfigError(
                "The e-mail address is not authorized to receive notifications for this repository: "
                "send it a confirmation first (POST .../authorizedemail/<email>)"
            )
        return {"email": email}

    def send(self, context: Context) -> Outcome:
        email = context.config["email"]
        if not context.is_test and not selectors.email_is_authorized(repository=context.repository, email=email):
            raise PermanentError(f"{email} is no longer authorized for this repository")
        message = context.message
        values = {"message": message, "is_test": context.is_test, "repository": context.repository.full_name}
        mail = EmailMultiAlternatives(
            subject=("[test] " if context.is_test else "") + message.summary,
            body=render_to_string("notifications/email/event.txt", values),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[email],
            # The same Message-ID on every retry: a mail client shows a repeated delivery once.
            headers={"Message-ID": f"<{context.delivery_uuid}@{_mail_domain()}>"},
        )
        mail.attach_alternative(render_to_string("notifications/email/event.html", values), "text/html")
        try:
            mail.send()
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                raise PermanentError(f"The mail server refused {email}: {codes[0]}") from None
            raise RetryableError(f"The mail server deferred {email}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise RetryableError(f"Sending mail failed: {exc}") from None
        return Outcome(response_excerpt=f"sent to {email}")


def _mail_domain() -> str:
    sender = settings.DEFAULT_FROM_EMAIL
    return sender.rsplit("@", 1)[-1].strip("> ") if "@" in sender else "localhost"
