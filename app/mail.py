"""Sending mail: over SMTP when `SMTP_URL` is set (smtp:// with STARTTLS when the server offers it, smtps:// for
TLS from the first byte, `user:password@` to log in), otherwise written to the log, so that in development the
lost-card link can be copied from the console (elsewhere the log only says a mail was not sent). Workers send: a
web request never waits for a mail server."""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from app.config import Config, is_loopback_host

log = logging.getLogger(__name__)
TIMEOUT = 20.0  # seconds for connecting and each command: well inside a worker's lease


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str


class MailError(Exception):
    """The server refused or could not be reached; worth another try later."""


def send_mail(config: Config, mail: Mail) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = config.mail_from, mail.to, mail.subject
    message.set_content(mail.text)
    if config.smtp_url is None:
        _log_instead(config, mail)
        return
    try:
        with _connect(config.smtp_url) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise MailError(f"{type(error).__name__}: {error}") from None


def _log_instead(config: Config, mail: Mail) -> None:
    """In development (a loopback PUBLIC_BASE_URL, or tests) the whole mail, sign-in link included; elsewhere a
    mail carries a secret that must not sit in a log, so only that it could not be sent."""
    if config.testing or is_loopback_host(urlsplit(config.public_base_url).hostname or ""):
        log.info("mail (SMTP_URL unset, so logged instead of sent) to %s: %s\n%s", mail.to, mail.subject, mail.text)
    else:
        log.warning("mail to %s not sent (%s): set SMTP_URL and MAIL_FROM to send mail", mail.to, mail.subject)


def _connect(url: str) -> smtplib.SMTP:
    parts = urlsplit(url)
    context = ssl.create_default_context()
    if parts.scheme == "smtps":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(parts.hostname, parts.port or 465, timeout=TIMEOUT, context=context)
    else:
        smtp = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=TIMEOUT)
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
    if parts.username:
        smtp.login(unquote(parts.username), unquote(parts.password or ""))
    return smtp
