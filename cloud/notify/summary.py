"""How alerts read in a notification: one subject line, and a plain-text body."""

from __future__ import annotations

from collections.abc import Sequence

from cloud.core.alerts import Alert


def subject(alerts: Sequence[Alert]) -> str:
    """One line for a notification: the alert itself, or a storm's count by rule."""
    if len(alerts) == 1:
        a = alerts[0]
        return f"[{a.severity}] {a.state}: {a.rule} on {a.entity} ({a.org})"
    rules = sorted({a.rule for a in alerts})
    worst = max(alerts, key=lambda a: ("info", "warning", "critical").index(a.severity)).severity
    return f"[{worst}] {len(alerts)} alerts: {', '.join(rules[:5])}{' ...' if len(rules) > 5 else ''}"


def body(alerts: Sequence[Alert]) -> str:
    lines = []
    for a in alerts:
        where = f"{a.org}/{a.gateway}/{a.entity}"
        lines.append(f"{a.ts.isoformat()} {a.state.upper()} {a.severity} {a.rule} {where}: {a.message}")
        if a.context:
            lines.extend(f"    {k}: {v}" for k, v in a.context.items())
    return "\n".join(lines) + "\n"
