"""The cloud's HTTP API: one FastAPI app that mounts each area's routers."""

from cloud.api.app import ApiOptions, create_app

__all__ = ["ApiOptions", "create_app"]
