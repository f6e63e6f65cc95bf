"""The `email` channel: one message per alert, or one digest per storm, over SMTP (STARTTLS optional)."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Literal

from pydantic import Field, SecretStr

from cloud.core.alerts import Alert
from cloud.notify.base import STANDALONE, ChannelConfig, ChannelContext, DeliveryError, NotificationChannel
from cloud.notify.registry import register
from cloud.notify.summary import body, subject


class EmailConfig(ChannelConfig):
    type: Literal["email"] = "email"
    host: str
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[str] = Field(min_length=1)
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0)


@register("email")
class Email(NotificationChannel[EmailConfig]):
    Config = EmailConfig

    def __init__(self, config: EmailConfig, context: ChannelContext = STANDALONE) -> None:
        super().__init__(config, context)
        self.sent = 0

    def send(self, alerts: Sequence[Alert]) -> None:
        msg = EmailMessage()
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.config.to)
        msg["Subject"] = subject(alerts)
        msg.set_content(body(alerts))
        try:
            with smtplib.SMTP(self.config.host, self.config.port, timeout=self.config.timeout_s) as smtp:
                if self.config.starttls:
                    smtp.starttls()
                if self.config.username and self.config.password:
                    smtp.login(self.config.username, self.config.password.get_secret_value())
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(self.name, f"SMTP {self.config.host}:{self.config.port}: {exc}") from None
        self.sent += 1
