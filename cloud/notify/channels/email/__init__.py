"""The `email` notification channel (README.md beside this file); importing it registers it."""

from cloud.notify.channels.email.channel import Email, EmailConfig

__all__ = ["Email", "EmailConfig"]
