"""The console's runtime: stores, uploads, broadcaster and live feed, mounted on a FastAPI app.

`mount_console(app, Console(...))` (cloud/console/api.py) adds the `/console` pages and
`/console/api` routes to the API app (`cloud.apps.api.create_app`); `Console.start()`/`stop()`
run its live-feed thread.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud.console.auth import LoginThrottle
from cloud.console.broadcast import Broadcaster
from cloud.console.live import LiveFeed, Sources
from cloud.console.store import ConsoleStore, Post
from cloud.console.uploads import DEFAULT_MAX_UPLOAD_BYTES, UploadStore
from cloud.core.errors import NotFoundError
from cloud.core.geo import ServiceAreas
from cloud.core.orgs import OrgDirectory
from cloud.io.private import private_dir

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
LEAFLET_DIR = Path(__file__).with_name("frontend") / "node_modules" / "leaflet" / "dist"
MENTION = re.compile(r"(?<![\w@])@([a-z0-9][a-z0-9-]{1,63})\b")

# What a new post does for organisations that do not have a console open. The rules engine's
# channels (cloud/notify) deliver alerts; until they take posts, this hook receives them.
PostNotifier = Callable[[Post, set[str]], None]


def log_post_notifier(post: Post, orgs: set[str]) -> None:
    log.info("console post %s in %s for %s (not watching)", post.id, post.thread, ", ".join(sorted(orgs)))


@dataclass(slots=True)
class Console:
    store: ConsoleStore
    uploads: UploadStore
    sources: Sources
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    refresh_s: float = 2.0
    orgs: OrgDirectory | None = None
    notify_posts: PostNotifier = log_post_notifier
    cookie_secure: bool = False
    broadcaster: Broadcaster = field(default_factory=Broadcaster)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    feed: LiveFeed | None = None
    areas: ServiceAreas | None = None  # the deployment's areas: the map's outlines and view

    def map_areas(self, org: str) -> dict[str, Any]:
        """The areas as GeoJSON for the map, their municipalities, and the view of `org`'s areas
        (every area for an organisation bound to none)."""
        areas = self.areas or ServiceAreas.load()
        try:
            theirs = list(self.orgs.organisation(org).areas) if self.orgs is not None else []
        except NotFoundError:
            theirs = []
        return {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"id": a.id, "name": a.name, "municipality": a.municipality},
                    "geometry": a.boundary.model_dump(),
                }
                for a in areas
            ],
            "municipalities": areas.areas.municipalities(),
            "view": areas.view(theirs),
        }

    @classmethod
    def open(
        cls,
        data_dir: Path,
        sources: Sources,
        *,
        db_url: str | None = None,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        **kwargs: Any,
    ) -> Console:
        """The console with its database (default SQLite `data_dir/console.db`) and uploads."""
        private_dir(data_dir)  # posts, uploads, audit and operators' password hashes
        store = ConsoleStore(db_url or f"sqlite:///{data_dir / 'console.db'}")
        return cls(store, UploadStore(data_dir / "uploads", max_upload_bytes), sources, **kwargs)

    def start(self) -> Console:
        if self.feed is None:
            self.feed = LiveFeed(self.sources, self.broadcaster, self.refresh_s).start()
        return self

    def stop(self) -> None:
        self.broadcaster.close_all()
        if self.feed is not None:
            self.feed.stop()
            self.feed = None

    def known_orgs(self) -> set[str]:
        """The organisations a post may mention: the registry's (`cloud.core.orgs`), no others."""
        return {o.id for o in self.orgs.organisations()} if self.orgs is not None else set()

    def mentions(self, text: str) -> list[str]:
        known = self.known_orgs()
        return sorted({m for m in MENTION.findall(text) if m in known})

    def announce(self, post: Post) -> None:
        """Push a new post to every console; notify mentioned organisations that are not watching."""
        self.broadcaster.publish("post", post.to_dict())
        if post.mentions:
            self.broadcaster.publish(
                "mention", {"orgs": post.mentions, "thread": post.thread, "post": post.id}
            )
            away = set(post.mentions) - self.broadcaster.watching_orgs()
            if away:
                try:
                    self.notify_posts(post, away)
                except Exception:  # a notification channel must never lose the post
                    log.exception("console post notifier failed for post %s", post.id)
