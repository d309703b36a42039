"""Mailing a lost card's magic link (app/domain/member_links.py): the link is made here, at delivery, so its
token exists only in the mail. A mail server that refuses or is down is tried again with backoff."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session

from app.domain.member_links import MEMBER_LINK_MAIL, issue_link
from app.mail import Mail, MailError, send_mail
from app.models import Member, OutboxEvent
from app.pages.catalogue import t
from app.services import services
from workers.errors import RetryLater


def send_member_link(app: Flask, session: Session, event: OutboxEvent) -> None:
    member = session.get(Member, event.member_id)
    if member is None or member.deleted_at is not None or not member.email:
        return  # deleted (or the email removed) since: nothing to send
    config = services(app).config
    locale = event.payload.get("locale") or member.locale
    link = f"{config.public_base_url}/member/link/{issue_link(session, member)}"
    session.commit()  # before sending: a mail must never carry a link the database does not know
    mail = Mail(to=member.email, subject=t("mail.link.subject", locale, program=member.program.name),
                text=t("mail.link.body", locale, name=member.name, program=member.program.name, link=link))
    try:
        send_mail(config, mail)
    except MailError as error:
        raise RetryLater(str(error)) from None


HANDLERS = {MEMBER_LINK_MAIL: send_member_link}
