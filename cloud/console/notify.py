"""New posts out through the rules engine's notification channels (cloud/notify).

Those channels deliver `Alert`s and route them by organisation and severity. A post that
mentions an organisation with no console open becomes one `console-mention` alert for that
organisation (severity `warning`, so routes for real incidents carry it), through the same
routes, e-mail and webhooks as the rules engine's — no second set of addresses to keep.
"""

from __future__ import annotations

import re
from pathlib import Path

from cloud.console.app import PostNotifier
from cloud.console.store import Post
from cloud.core.alerts import Alert
from cloud.notify import NotificationsConfig, Notifier, build_channels
from edge.contract import BrokerAddress

RULE = "console-mention"


def mention_alert(post: Post, org: str, console_url: str | None = None) -> Alert:
    # The entity becomes part of an MQTT topic (sr/v1/alerts/{org}/{entity}/...): ids only.
    entity = re.sub(r"[^a-z0-9-]+", "-", post.thread.lower()).strip("-")[:64] or "city"
    text = post.text if len(post.text) <= 500 else post.text[:499] + "…"
    context: dict[str, object] = {"thread": post.thread, "post": post.id, "from": f"{post.org}/{post.author}"}
    if console_url:
        context["url"] = console_url
    return Alert(
        rule=RULE,
        org=org,
        entity=entity,
        gateway="console",
        kind="console",
        severity="warning",
        state="firing",
        since=post.created_at,
        ts=post.created_at,
        message=f"{post.author} ({post.org}) in {post.thread}: {text}",
        context=context,
    )


def notifier_hook(notifier: Notifier, console_url: str | None = None) -> PostNotifier:
    """A `Console.notify_posts` that submits one mention alert per organisation to `notifier`."""

    def notify(post: Post, orgs: set[str]) -> None:
        notifier.submit([mention_alert(post, org, console_url) for org in sorted(orgs)])

    return notify


def notifier_from_rules_file(path: Path, broker: BrokerAddress | None = None) -> Notifier | None:
    """The rules file's `notifications:` as a Notifier; None when it routes nothing."""
    from cloud.rules.engine import read_rules_file  # noqa: PLC0415  (loads the rule registry)

    config = NotificationsConfig.model_validate(read_rules_file(path).notifications or {})
    if not config.routes:
        return None
    return Notifier(config, build_channels(config, broker))
