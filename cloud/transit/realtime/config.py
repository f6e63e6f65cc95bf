"""The reader's configuration: a YAML file per operator, checked at start with path and value."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.contract import Id

Url = Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2000)]


class ReaderConfigError(ValueError):
    """A configuration that cannot run; says which entry and value are wrong."""


class FeedUrl(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: Url
    # What it serves, for the operator's documentation and the health report; the reader reads
    # whatever entities come (some operators publish all three in one feed).
    name: str = Field(default="feed", pattern=r"^[a-z0-9_-]{1,32}$")


class ApiKey(BaseModel):
    """A key the operator issued, read from a file (never the YAML itself, never the environment):
    sent as a header (`header: x-api-key`, `Authorization` with `prefix: "Bearer "`) or a query
    parameter (`param: key`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path
    header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    param: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    prefix: str = ""

    @model_validator(mode="after")
    def _one_place(self) -> Self:
        if (self.header is None) == (self.param is None):
            raise ValueError("give exactly one of header or param: where the operator wants the key")
        return self

    def value(self) -> str:
        try:
            return self.prefix + self.file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ReaderConfigError(f"api_key.file: cannot read {self.file}: {exc.strerror}") from None


class ReaderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    operator: Id  # the org of the readings, and the operator whose static GTFS is checked against
    source: Id = "gtfs-rt"  # the `gateway` of the readings: one per reader
    feeds: list[FeedUrl] = Field(min_length=1, max_length=8)
    interval_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    timeout_s: float = Field(default=10.0, gt=0, le=120.0)
    backoff_max_s: float = Field(default=300.0, ge=1.0)
    # The header timestamp not moving forward for this long makes the feed stale.
    stale_after_s: float = Field(default=180.0, ge=10.0)
    api_key: ApiKey | None = None
    headers: dict[str, str] = Field(default_factory=dict)  # extra request headers (not secrets)
    batch_readings: int = Field(default=2000, ge=1, le=5000)
    health_interval_s: float = Field(default=30.0, ge=1.0)
    # The language of service alert texts to keep when the feed translates them.
    language: str = Field(default="it", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]+)?$")

    @model_validator(mode="after")
    def _distinct_urls(self) -> Self:
        urls = [f.url for f in self.feeds]
        if len(urls) != len(set(urls)):
            raise ValueError("feeds: the same url twice")
        return self


def load_config(path: Path) -> ReaderConfig:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ReaderConfigError(f"{path}: {exc}") from None
    try:
        return ReaderConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']} ({err.get('input')!r})"
            for err in exc.errors(include_url=False)
        )
        raise ReaderConfigError(f"{path}: {problems}") from None
