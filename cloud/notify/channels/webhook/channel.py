"""The `webhook` channel: HTTP POST of the alerts as JSON, HMAC-SHA256 signed, retried on 5xx and errors.

The signature header is `X-Sitroom-Signature: sha256=<hex>` over `<timestamp>.<body>`, with the
timestamp in `X-Sitroom-Timestamp` (the Stripe/GitHub scheme: the receiver recomputes it with
the shared secret and refuses stale timestamps, so a captured request cannot be replayed later).
A 4xx is the receiver refusing the content: it is not retried.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from typing import Literal

import httpx
import orjson
from pydantic import Field, SecretStr

from cloud.core.alerts import Alert
from cloud.notify.base import STANDALONE, ChannelConfig, ChannelContext, DeliveryError, NotificationChannel
from cloud.notify.registry import register
from cloud.notify.summary import subject


class WebhookConfig(ChannelConfig):
    type: Literal["webhook"] = "webhook"
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr
    attempts: int = Field(default=4, ge=1, le=20)
    backoff_s: float = Field(default=0.5, ge=0)
    timeout_s: float = Field(default=5.0, gt=0)


def signature(secret: bytes, timestamp: str, payload: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + payload, hashlib.sha256).hexdigest()


@register("webhook")
class Webhook(NotificationChannel[WebhookConfig]):
    Config = WebhookConfig

    def __init__(self, config: WebhookConfig, context: ChannelContext = STANDALONE) -> None:
        super().__init__(config, context)
        self.client = httpx.Client(timeout=config.timeout_s)
        self.sent = 0
        self.retries = 0

    def send(self, alerts: Sequence[Alert]) -> None:
        payload = orjson.dumps(
            {
                "summary": subject(alerts),
                "count": len(alerts),
                "alerts": [orjson.loads(a.to_json()) for a in alerts],
            }
        )
        secret = self.config.secret.get_secret_value().encode()
        last = ""
        for attempt in range(self.config.attempts):
            if attempt:
                self.retries += 1
                time.sleep(self.config.backoff_s * 2 ** (attempt - 1))
            ts = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Sitroom-Timestamp": ts,
                "X-Sitroom-Signature": signature(secret, ts, payload),
            }
            try:
                response = self.client.post(self.config.url, content=payload, headers=headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code < 300:
                self.sent += 1
                return
            last = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                raise DeliveryError(self.name, f"{last} from {self.config.url}: refused, not retried")
        raise DeliveryError(self.name, f"{last} from {self.config.url} after {self.config.attempts} attempts")

    def close(self) -> None:
        self.client.close()
