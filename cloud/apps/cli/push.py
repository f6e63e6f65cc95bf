"""`sitroom push FILE --org ORG --token-file PATH`: a utility's technician sends a file to the push API.

The file is a wire-contract JSON batch or a GeoJSON FeatureCollection of vehicle positions (told
apart by its `type`). A file larger than one batch allows is sent in parts. Each part's batch id
is derived from the file's content (or `--batch-id`), so running the same command again after a
lost answer stores nothing twice; a 429 or 503 is waited out (`Retry-After`) and the part sent
again. Refused readings are listed on stderr with their path and reason; the exit status is 0
when every reading was stored, 2 when some were refused, 1 when a part was refused whole.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import click
import httpx
import orjson

from cloud.core.directory import FLEET_GATEWAY
from cloud.ingest.push import PREFIX
from edge.contract import ContractError, loads
from edge.contract.batch import MAX_READINGS_PER_BATCH

_SHOWN_REFUSALS = 50
_BACKOFF_MAX_S = 30.0


def parts(raw: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(endpoint, bodies): the document cut into bodies of at most MAX_READINGS_PER_BATCH readings."""
    if raw.get("type") == "FeatureCollection":
        key, endpoint = "features", "positions"
    else:
        key, endpoint = "readings", "readings"
    items = raw.get(key)
    if not isinstance(items, list) or len(items) <= MAX_READINGS_PER_BATCH:
        return endpoint, [raw]
    step = MAX_READINGS_PER_BATCH
    return endpoint, [{**raw, key: items[i : i + step]} for i in range(0, len(items), step)]


class PushFailedError(click.ClickException):
    exit_code = 1


def _send(
    client: httpx.Client, path: str, body: bytes, headers: dict[str, str], deadline: float
) -> dict[str, Any]:
    delay = 1.0
    while True:
        wait: float | None
        try:
            response = client.post(path, content=body, headers=headers)
        except httpx.TransportError as exc:
            wait, why = delay, f"cannot reach the API ({exc.__class__.__name__})"
        else:
            if response.status_code == 200:
                answer: dict[str, Any] = response.json()
                return answer
            if response.status_code not in (429, 503):
                detail = response.json().get("detail", response.text) if response.content else ""
                raise PushFailedError(f"refused ({response.status_code}): {detail}")
            wait = float(response.headers.get("retry-after", delay))
            why = f"HTTP {response.status_code}"
        if time.monotonic() + wait > deadline:
            raise PushFailedError(
                f"gave up: {why}; run the same command again later (nothing is stored twice)"
            )
        click.echo(f"  {why}; sending again in {wait:g} s", err=True)
        time.sleep(wait)
        delay = min(delay * 2, _BACKOFF_MAX_S)


@click.command("push")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--org", required=True, help="Your organisation's id (checked against the token's).")
@click.option(
    "--token-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The file holding your organisation's API token.",
)
@click.option("--url", envvar="SITROOM_API_URL", default="http://127.0.0.1:8080", show_default=True)
@click.option("--batch-id", help="Your id for this file; default: derived from its content.")
@click.option("--gateway", default=FLEET_GATEWAY, show_default=True, help="For positions: the gateway id.")
@click.option("--timeout-s", default=300.0, show_default=True, help="How long to keep trying.")
def push_command(
    file: Path, org: str, token_file: Path, url: str, batch_id: str | None, gateway: str, timeout_s: float
) -> None:
    """Send FILE (a JSON batch of readings, or GeoJSON vehicle positions) to the push API."""
    content = file.read_bytes()
    try:
        raw = loads(content)
    except ContractError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    if not isinstance(raw, dict):
        raise click.ClickException(f"{file}: expected a JSON object (a batch or a FeatureCollection)")
    if raw.get("type") != "FeatureCollection" and raw.get("org") != org:
        raise click.ClickException(f"{file}: the batch is for organisation {raw.get('org')!r}, not {org!r}")
    endpoint, bodies = parts(raw)
    base_id = batch_id or "file-" + hashlib.sha256(content).hexdigest()[:32]
    token = token_file.read_text(encoding="utf-8").strip()
    deadline = time.monotonic() + timeout_s
    params = f"?gateway={gateway}" if endpoint == "positions" else ""
    totals = {"readings": 0, "accepted": 0, "refused": 0}
    shown = 0
    with httpx.Client(base_url=url, timeout=120, trust_env=False) as client:
        for n, body in enumerate(bodies, 1):
            part_id = base_id if len(bodies) == 1 else f"{base_id}.{n}"
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": part_id}
            if len(bodies) > 1:
                click.echo(f"part {n}/{len(bodies)} ({part_id})", err=True)
            answer = _send(client, f"{PREFIX}/{endpoint}{params}", orjson.dumps(body), headers, deadline)
            if answer.get("org") != org:
                raise PushFailedError(f"the token is organisation {answer.get('org')!r}'s, not {org!r}'s")
            for key in totals:
                totals[key] += int(answer[key])
            for v in answer["verdicts"]:
                if v["status"] == "refused" and shown < _SHOWN_REFUSALS:
                    shown += 1
                    value = f" (value {v['value']})" if v.get("value") else ""
                    where = f"part {n}: " if len(bodies) > 1 else ""
                    click.echo(
                        f"  refused {where}{v['field']}: {v['message']} [{v['reason']}]{value}", err=True
                    )
    if totals["refused"] > shown:
        click.echo(f"  ... and {totals['refused'] - shown} more refused", err=True)
    stored, sent = totals["accepted"], totals["readings"]
    click.echo(f"{file}: {stored} of {sent} readings stored, {totals['refused']} refused")
    if totals["refused"]:
        raise SystemExit(2)


__all__ = ["parts", "push_command"]
