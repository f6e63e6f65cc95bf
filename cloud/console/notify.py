"""New posts out through the rules engine's notification channels (cloud/notify).

Those channels deliver `Alert`s and route them by organisation and severity. A post that
mentions an organisation with no console open becomes one `console-mention` alert for that
organisation (severity `warning`, so routes for real incidents carry it), through the same
routes, e-mail and webhooks as the rules engine's — no second set of addresses to keep.
"""

from __future__ import annotations

import re

from cloud.console.app import PostNotifier
from cloud.console.store import Post
from cloud.core.alerts import Alert, AlertSink

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


def notifier_hook(notifier: AlertSink, console_url: str | None = None) -> PostNotifier:
    """A `Console.notify_posts` that submits one mention alert per organisation to `notifier`."""

    def notify(post: Post, orgs: set[str]) -> None:
        notifier.submit([mention_alert(post, org, console_url) for org in sorted(orgs)])

    return notify
