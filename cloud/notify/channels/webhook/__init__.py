"""The `webhook` notification channel (README.md beside this file); importing it registers it."""

from cloud.notify.channels.webhook.channel import Webhook, WebhookConfig, signature

__all__ = ["Webhook", "WebhookConfig", "signature"]
