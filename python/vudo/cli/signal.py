"""`vudo signal emit` and `vudo signal watch`: signals through a node's HTTP API."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import httpx

from vudo.cli.output import print_json, style
from vudo.errors import VudoError
from vudo.identity import load_api_token

KINDS = ["flood", "gradient", "directed", "quorum", "action_potential"]


def _target(api: str | None, data_dir: str | None) -> str:
    from vudo.cli.main import _api_url

    return _api_url(api, data_dir)


def _token(token: str | None, data_dir: str | None) -> str:
    if token:
        return token
    from vudo.cli.main import _data_dir

    try:
        return load_api_token(_data_dir(data_dir))
    except VudoError as err:
        raise click.UsageError(f"{err} (or pass --token)") from None


@click.group()
def signal() -> None:
    """Emit and watch signals."""


@signal.command()
@click.option("--type", "kind", type=click.Choice(KINDS), required=True, help="propagation mode")
@click.option("--payload", default="", help="text carried by the signal")
@click.option("--ttl", type=click.IntRange(1, 255), help="hops the signal may travel [node default]")
@click.option("--decay", type=float, help="gradient: strength factor per hop [0.5]")
@click.option("--target", help="directed: the target node id")
@click.option("--threshold", type=float, help="quorum: fraction of the network that must contribute")
@click.option("--refractory-ms", type=click.IntRange(0, 3_600_000), help="action potential: refractory period [1000]")
@click.option("--key", default="", help="quorum accumulator / gradient field / action-potential kind")
@click.option("--api", help="node API URL [the node running in --data-dir]")
@click.option("--data-dir", help="node data directory (for the API URL and token)")
@click.option("--token", help="API bearer token [<data-dir>/api-token]")
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def emit(kind: str, payload: str, api: str | None, data_dir: str | None, token: str | None, as_json: bool, **params: Any) -> None:
    """Emit a signal from the node; prints its id."""
    url = _target(api, data_dir) + "/v1/signals"
    body = {"type": kind, "payload": payload, **{k: v for k, v in params.items() if v is not None}}
    try:
        response = httpx.post(url, json=body, headers={"Authorization": f"Bearer {_token(token, data_dir)}"}, timeout=10.0)
    except httpx.HTTPError as err:
        click.echo(style(f"error: cannot reach {url}: {err} (is the node running?)", fg="red"), err=True)
        sys.exit(1)
    if response.status_code != 200:
        detail = response.json().get("detail") if response.headers.get("content-type", "").startswith("application/json") else response.text
        click.echo(style(f"error: the node refused the signal ({response.status_code}): {detail}", fg="red"), err=True)
        sys.exit(2 if response.status_code in (401, 403, 422) else 1)
    if as_json:
        print_json(response.json())
    else:
        click.echo(response.json()["id"])


def _row(kind: str, data: dict[str, Any]) -> list[str]:
    if kind == "signal":
        strength = data.get("strength")
        return [kind, str(data["id"]), str(data["type"]), str(data["source"]), str(data["hops"]), "-" if strength is None else f"{strength:.3f}"]
    if kind == "quorum_fired":
        return [style(kind, fg="green"), str(data["key"]), "quorum", f"{data['contributors']}/{data['network_size']}", "-", "-"]
    return [style(kind, fg="red"), "-", str(data.get("reason", "-")), str(data.get("peer", "-")), "-", "-"]


@signal.command()
@click.option("--count", type=click.IntRange(1), help="stop after this many events")
@click.option("--api", help="node API URL [the node running in --data-dir]")
@click.option("--data-dir", help="node data directory")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def watch(count: int | None, api: str | None, data_dir: str | None, as_json: bool) -> None:
    """Print signals (and quorum firings, rejections) as the node handles them, until interrupted.

    Columns: event, signal id (or quorum key), type, source, hops, strength.
    """
    url = _target(api, data_dir) + "/v1/events"
    params = {"limit": count} if count else {}
    kind = "message"
    try:
        with httpx.stream("GET", url, params=params, timeout=httpx.Timeout(10.0, read=None)) as response:
            if response.status_code != 200:
                click.echo(style(f"error: {url} answered {response.status_code}", fg="red"), err=True)
                sys.exit(1)
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data = json.loads(line.removeprefix("data: "))
                    if as_json:
                        click.echo(json.dumps({"event": kind, **data}, sort_keys=True))
                    else:
                        click.echo("  ".join(_row(kind, data)))
                    sys.stdout.flush()
    except httpx.HTTPError as err:
        click.echo(style(f"error: lost {url}: {err}", fg="red"), err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
