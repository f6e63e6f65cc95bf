"""The gateway's declaration of its sensors, published retained on `.../meta` (edge.contract.meta)."""

from __future__ import annotations

from edge.contract import GatewayMeta, encode_meta
from edge.drivers import declaration
from gateway.config import GatewayConfig


def meta_payload(config: GatewayConfig, config_version: str) -> bytes:
    """Each sensor's id, kind and driver (a source's devices too), as the cloud learns them."""
    return encode_meta(
        GatewayMeta(
            v=1,
            org=config.org,
            gateway=config.id,
            config_version=config_version,
            sensors=tuple(declaration(s) for s in config.sensors),
        )
    )
