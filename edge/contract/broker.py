"""Broker addresses as configured everywhere: `mqtt://[user:pass@]host[:port]` or `mqtts://`."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from edge.contract.errors import ContractError


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str, *, field: str = "broker.url") -> BrokerAddress:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ContractError(f"not a broker URL ({exc})", field=field, value=url) from None
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ContractError("expected mqtt://host[:port] or mqtts://host[:port]", field=field, value=url)
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"
