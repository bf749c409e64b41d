"""The email channel: SMTP with STARTTLS (``smtplib``), a plain-text part and an HTML alternative."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from spendgate.alerts._config import EmailChannel
from spendgate.alerts._message import Notification

__all__ = ["EmailSender"]


class EmailSender:
    """Sends one multipart/alternative email (an alert event or a digest) to every ``to`` address of the channel.

    With ``starttls`` (the default) the session is upgraded before anything is sent, verifying the
    server's certificate and host name; a server that does not offer STARTTLS is an error, never a
    silent fallback to plain text. Login happens only on the encrypted session.
    """

    def __init__(self, config: EmailChannel) -> None:
        self.config = config

    def build(self, message: Notification) -> EmailMessage:
        """The email: subject, both parts, a Date and a Message-ID."""
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = self.config.sender
        mail["To"] = ", ".join(self.config.to)
        mail["Date"] = format_datetime(message.sent_at)
        mail["Message-ID"] = make_msgid(idstring=message.id)
        mail["X-Spendgate-Id"] = message.id
        mail.set_content(message.text())
        mail.add_alternative(message.html(), subtype="html")
        return mail

    def send(self, message: Notification) -> None:
        c = self.config
        with smtplib.SMTP(c.host, c.port, timeout=c.timeout_s) as smtp:
            smtp.ehlo()
            if c.starttls:
                context = ssl.create_default_context(cafile=c.ca_file)
                smtp.starttls(context=context)
                smtp.ehlo()
            if c.username is not None:
                smtp.login(c.username, "" if c.password is None else c.password.get_secret_value())
            smtp.send_message(self.build(message))
