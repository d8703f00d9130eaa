"""`vudo` — run and inspect VUDO nodes.

Data goes to stdout, logs and progress to stderr. ``NO_COLOR`` is honoured.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx

from vudo import __version__
from vudo.cli.credits import credits, witness
from vudo.cli.output import print_json, style, table
from vudo.cli.signal import signal
from vudo.config import ENV_PREFIX, default_data_dir, load_config
from vudo.errors import VudoError
from vudo.identity import init_data_dir, load_api_token, load_identity
from vudo.physarum.cli import physarum

DATA_DIR_HELP = f"node data directory [env {ENV_PREFIX}DATA_DIR; default {default_data_dir()}]"


def _data_dir(value: str | None) -> Path:
    if value:
        return Path(value).expanduser()
    env = os.environ.get(ENV_PREFIX + "DATA_DIR")
    return Path(env).expanduser() if env else default_data_dir()


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


def _fail(err: Exception) -> None:
    click.echo(style(f"error: {err}", fg="red"), err=True)
    sys.exit(2 if isinstance(err, VudoError) and err.fault == "local" else 1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vudo")
def cli() -> None:
    """VUDO: a peer-to-peer node runtime modelled on fungal mycelium."""


@cli.command()
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--force", is_flag=True, help="replace an existing identity (the old one is lost)")
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def init(data_dir: str | None, force: bool, as_json: bool) -> None:
    """Create the node's Ed25519 identity and API token."""
    path = _data_dir(data_dir)
    try:
        identity = init_data_dir(path, force=force)
    except VudoError as err:
        _fail(err)
    if as_json:
        print_json({"node_id": identity.node_id, "data_dir": str(path)})
    else:
        click.echo(identity.node_id)
        click.echo(f"identity and API token written to {path}", err=True)


@cli.command("id")
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def show_id(data_dir: str | None, as_json: bool) -> None:
    """Print this node's id (its libp2p PeerId)."""
    path = _data_dir(data_dir)
    try:
        identity = load_identity(path)
    except VudoError as err:
        _fail(err)
    if as_json:
        print_json({"node_id": identity.node_id, "public_key": identity.public_key.hex()})
    else:
        click.echo(identity.node_id)


@cli.command()
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config file [default <data-dir>/vudo.toml]")
@click.option("--host", help="gossip bind address [127.0.0.1]")
@click.option("--gossip-port", type=int, help="gossip UDP port [7400]")
@click.option("--advertise-host", help="address peers should use to reach us [--host]")
@click.option("--api-host", help="HTTP API bind address [127.0.0.1]")
@click.option("--api-port", type=int, help="HTTP API port [7500]")
@click.option("--link-port", type=int, help="link (libp2p TCP) port [gossip port + 200]")
@click.option("--max-connections", type=int, help="most links the node keeps open [128]")
@click.option("--allow-public-api", is_flag=True, default=None, help="allow binding the API to a non-loopback address")
@click.option("--seed", "seeds", multiple=True, help="seed peer HOST:PORT (repeatable)")
@click.option("--cluster-id", help="only gossip with nodes of this cluster [vudo]")
@click.option("--gossip-interval-ms", type=int, help="gossip round interval [300]")
@click.option("--min-connections", type=int, help="verified peers needed to be ready [1 with seeds, else 0]")
@click.option("--bootstrap-timeout-s", type=float, help="give up joining after this many seconds [60]")
@click.option("--announcement-ttl-s", type=float, help="reject announcements older than this [60]")
@click.option("--refresh-interval-s", type=float, help="re-sign announcement and gradient this often [5]")
@click.option("--witness", is_flag=True, default=None, help="hold a replica of the credit ledger and vote in its Raft cluster (advertises the Witness capability)")
@click.option("--witness-stake", type=int, help="advertise the Witness capability with this stake (implies --witness)")
@click.option("--ledger-witness", "ledger_witnesses", multiple=True,
              help="a ledger witness this node trusts (node id, repeatable); a non-witness then forwards credit operations only to these [every member advertising Witness]")
@click.option("--raft-fault-drop-file", help="FAULT INJECTION for tests: file of node ids whose Raft frames this witness drops, re-read live")
@click.option("--gossip-key", "gossip_keys", multiple=True, help="cluster gossip key from `vudo keygen`, primary first (repeatable) [env VUDO_GOSSIP_KEYS]")
@click.option("--gossip-key-file", help="0600 file of gossip keys, one per line, primary first")
@click.option("--open-gossip", is_flag=True, default=None, help="run without a cluster keyring (gossip readable and writable by anyone who reaches the port)")
@click.option("--api-vhost", "api_vhosts", multiple=True, help="extra Host name the API answers to, against DNS rebinding ('*' = any) (repeatable)")
@click.option("--max-unverified", type=int, help="never-verified nodes kept in the membership view and in the gossip engine (1-256) [256]")
@click.option("--signal-flood", type=click.Choice(["plumtree", "plain"]), help="broadcast of flood and quorum signals [plumtree]")
@click.option("--signal-fault-loss", type=click.FloatRange(0.0, 1.0), help="FAULT INJECTION for tests/benchmarks: drop this fraction of outgoing signal frames [0]")
@click.option("-v", "--verbose", count=True, help="more logs (-vv for debug)")
def node(config_file: str | None, verbose: int, **flags: Any) -> None:
    """Run one node until SIGINT/SIGTERM (then leave gracefully)."""
    from vudo.node import run_node

    _setup_logging(verbose)
    given = {k: v for k, v in flags.items() if v is not None and v != ()}
    try:
        config = load_config(given, config_file=Path(config_file) if config_file else None)
        code = run_node(config)
    except VudoError as err:
        _fail(err)
    sys.exit(code)


@cli.command()
@click.option("--nodes", "-n", default=3, show_default=True, type=click.IntRange(1, 200), help="how many nodes")
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="cluster directory [a temporary one]")
@click.option("--base-port", type=int, default=0, help="first port to use [pick free ports]")
@click.option("--gossip-interval-ms", type=int, default=300, show_default=True)
@click.option("--witnesses", type=click.IntRange(0, 200), default=None, help="how many nodes are credit witnesses (Raft voters) [3, or every node when fewer]")
@click.option("--json", "as_json", is_flag=True, help="print the cluster description as JSON instead of a banner")
@click.option("--open-gossip", is_flag=True, help="no cluster key (by default the cluster gets a new one in DIR/gossip.key)")
def dev(nodes: int, directory: str | None, base_port: int, gossip_interval_ms: int, witnesses: int | None, as_json: bool, open_gossip: bool) -> None:
    """Start a local network of real nodes on loopback, with its dashboard."""
    from vudo.dev import run_dev

    try:
        sys.exit(run_dev(nodes=nodes, directory=Path(directory) if directory else None, base_port=base_port,
                         gossip_interval_ms=gossip_interval_ms, witnesses=witnesses, as_json=as_json,
                         open_gossip=open_gossip))
    except VudoError as err:
        _fail(err)


def _api_url(api: str | None, data_dir: str | None) -> str:
    if api:
        return api.rstrip("/")
    from vudo.node import data_dir_runtime

    path = _data_dir(data_dir)
    runtime = data_dir_runtime(path)
    if runtime is None or not isinstance(runtime.get("api"), str):
        raise click.UsageError(f"no running node found in {path} (start one with `vudo node`, or pass --api URL)")
    return str(runtime["api"])


def _get(url: str) -> Any:
    try:
        response = httpx.get(url, timeout=5.0)
    except httpx.HTTPError as err:
        click.echo(style(f"error: cannot reach {url}: {err} (is the node running?)", fg="red"), err=True)
        sys.exit(1)
    if response.status_code != 200:
        click.echo(style(f"error: {url} answered {response.status_code}: {response.text[:200]}", fg="red"), err=True)
        sys.exit(1)
    return response.json()


@cli.command()
@click.option("--api", help="node API URL [the node running in --data-dir]")
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def members(api: str | None, data_dir: str | None, as_json: bool) -> None:
    """List the members a node knows, with status and verification."""
    data = _get(_api_url(api, data_dir) + "/v1/members")
    if as_json:
        print_json(data)
        return
    colours = {"alive": "green", "dead": "red", "left": "yellow"}
    rows = []
    for m in data["members"]:
        caps = ",".join(c["kind"] for c in m["capabilities"])
        g = m.get("gradient")
        grad = f"c{g['compute_available']:.2f} s{g['storage_available']:.2f} b{g['bandwidth_available']:.2f}" if g else "-"
        rows.append([
            m["node_id"] + (" *" if m["is_self"] else ""),
            style(m["status"], fg=colours.get(m["status"], "white")),
            "yes" if m["verified"] else "NO",
            m["gossip_addr"],
            caps or "-",
            grad,
        ])
    click.echo(table(["NODE", "STATUS", "VERIFIED", "GOSSIP", "CAPABILITIES", "GRADIENT"], rows))


@cli.command()
@click.option("--api", help="node API URL [the node running in --data-dir]")
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def links(api: str | None, data_dir: str | None, as_json: bool) -> None:
    """List a node's hyphal links: peer, age, latency, strength, reputation."""
    data = _get(_api_url(api, data_dir) + "/v1/links")
    if as_json:
        print_json(data)
        return
    now = time.time()
    rows = [
        [
            link["peer"],
            link["direction"],
            link["addr"],
            f"{max(0.0, now - link['established']):.0f}s",
            f"{max(0.0, now - link['last_seen']):.1f}s",
            f"{link['latency_ms']} ms",
            f"{link['bandwidth_score']:.2f}",
            f"{link['reputation']:.2f}",
        ]
        for link in data["links"]
    ]
    click.echo(table(["PEER", "DIRECTION", "ADDR", "AGE", "SEEN", "LATENCY", "STRENGTH", "REPUTATION"], rows))
    click.echo(f"{len(rows)} link(s)", err=True)


@cli.command()
@click.option("--api", help="node API URL [the node running in --data-dir]")
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def topology(api: str | None, data_dir: str | None, as_json: bool) -> None:
    """Show the link graph as a node sees it: each node's links and the connected components."""
    from vudo.hyphal.topology import connected_components

    data = _get(_api_url(api, data_dir) + "/v1/topology")
    if as_json:
        print_json(data)
        return
    neighbours: dict[str, list[str]] = {n: [] for n in data["nodes"]}
    for a, b in data["edges"]:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    rows = [
        [node + (" *" if node == data["self"] else ""), str(len(peers)), ", ".join(sorted(peers)) or "-"]
        for node, peers in sorted(neighbours.items())
    ]
    click.echo(table(["NODE", "DEGREE", "LINKED WITH"], rows))
    components = connected_components(neighbours, [(a, b) for a, b in data["edges"]])
    click.echo(f"{len(neighbours)} node(s), {len(data['edges'])} link(s), {len(components)} component(s)", err=True)


@cli.command()
def keygen() -> None:
    """Print a new cluster gossip key (base64 of 32 random bytes)."""
    from vudo.gossip_keys import generate_key

    click.echo(generate_key())


def _token(data_dir: str | None) -> str:
    env = os.environ.get(ENV_PREFIX + "API_TOKEN")
    if env:
        return env.strip()
    try:
        return load_api_token(_data_dir(data_dir))
    except VudoError as err:
        raise click.UsageError(f"{err} (or set {ENV_PREFIX}API_TOKEN)") from None


class _KeysCallError(Exception):
    """A keys call a node refused or could not answer (message for the operator, exit code)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _keys_request(url: str, token: str, body: dict[str, str] | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=10.0) if body else httpx.get(url, headers=headers, timeout=10.0)
    except httpx.HTTPError as err:
        raise _KeysCallError(f"cannot reach {url}: {err} (is the node running?)", 1) from None
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise _KeysCallError(f"{url} answered {response.status_code}: {str(detail)[:300]}",
                             2 if response.status_code in (400, 401, 403) else 1)
    return response.json()


def _keys_call(api: str | None, data_dir: str | None, body: dict[str, str] | None) -> Any:
    url = _api_url(api, data_dir) + "/v1/gossip/keys"
    try:
        return _keys_request(url, _token(data_dir), body)
    except _KeysCallError as err:
        click.echo(style(f"error: {err}", fg="red"), err=True)
        sys.exit(err.code)


def _dev_cluster_nodes(directory: str) -> list[dict[str, str]]:
    """The nodes `vudo dev --dir DIRECTORY` started (its cluster file), each with an api URL and a data dir."""
    from vudo.dev import CLUSTER_FILE

    path = Path(directory).expanduser() / CLUSTER_FILE
    try:
        data = json.loads(path.read_text())
        nodes = [{"node_id": str(n["node_id"]), "api": str(n["api"]), "data_dir": str(n["data_dir"])} for n in data["nodes"]]
    except FileNotFoundError:
        raise click.UsageError(f"no dev cluster in {directory}: {path} is missing (start one with `vudo dev --dir {directory}`)") from None
    except (ValueError, KeyError, TypeError) as err:
        raise click.UsageError(f"{path} is not a `vudo dev` cluster file ({err}); restart the cluster to rewrite it") from None
    if not nodes:
        raise click.UsageError(f"{path} lists no node")
    return nodes


def _keys_everywhere(cluster: str, body: dict[str, str] | None, as_json: bool) -> None:
    """Run one keys call on every node of a dev cluster, in order; report each; fail if any failed."""
    results: list[dict[str, Any]] = []
    worst = 0
    for node in _dev_cluster_nodes(cluster):
        entry: dict[str, Any] = {"node_id": node["node_id"], "api": node["api"]}
        try:
            token = load_api_token(Path(node["data_dir"]))
            entry["result"] = _keys_request(node["api"] + "/v1/gossip/keys", token, body)
        except VudoError as err:
            entry["error"], worst = str(err), max(worst, 2)
        except _KeysCallError as err:
            entry["error"], worst = str(err), max(worst, err.code)
        results.append(entry)
    if as_json:
        print_json({"nodes": results})
    else:
        rows = []
        for entry in results:
            short = entry["node_id"][-8:]
            if "error" in entry:
                rows.append([short, style("error: " + entry["error"], fg="red"), ""])
            elif not entry["result"]["sealed"]:
                rows.append([short, "(open gossip, no keyring)", ""])
            else:
                rows += [[short, k["id"], "yes" if k["primary"] else ""] for k in entry["result"]["keys"]]
        click.echo(table(["NODE", "KEY ID", "PRIMARY"], rows))
    if worst:
        click.echo(style(f"error: {sum('error' in e for e in results)} of {len(results)} nodes failed; "
                         "fix them and run the same command again (it is safe to repeat)", fg="red"), err=True)
        sys.exit(worst)


def _keys_dispatch(cluster: str | None, api: str | None, data_dir: str | None, body: dict[str, str] | None,
                   as_json: bool) -> None:
    if cluster is not None:
        if api or data_dir:
            raise click.UsageError("--cluster acts on every node of a dev cluster; leave out --api and --data-dir")
        _keys_everywhere(cluster, body, as_json)
    else:
        _print_keys(_keys_call(api, data_dir, body), as_json)


def _print_keys(data: Any, as_json: bool) -> None:
    if as_json:
        print_json(data)
    elif not data["sealed"]:
        click.echo("gossip is open on this node (no keyring)")
    else:
        click.echo(table(["KEY ID", "PRIMARY"], [[k["id"], "yes" if k["primary"] else ""] for k in data["keys"]]))


@cli.group()
def keys() -> None:
    """Manage the cluster gossip keyring of a running node, or of every node of a dev cluster
    (rotate: install, use, remove on every node)."""


_api_option = click.option("--api", help="node API URL [the node running in --data-dir]")
_dir_option = click.option("--data-dir", help=DATA_DIR_HELP + "; its api-token authenticates the call")
_cluster_option = click.option("--cluster", metavar="DIR",
                               help="act on every node of the `vudo dev --dir DIR` cluster, one after the other")
_json_option = click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")


@keys.command("list")
@_api_option
@_dir_option
@_cluster_option
@_json_option
def keys_list(api: str | None, data_dir: str | None, cluster: str | None, as_json: bool) -> None:
    """List installed key ids, primary first."""
    _keys_dispatch(cluster, api, data_dir, None, as_json)


def _key_command(op: str, doc: str) -> None:
    @keys.command(op, help=doc)
    @click.argument("key")
    @_api_option
    @_dir_option
    @_cluster_option
    @_json_option
    def command(key: str, api: str | None, data_dir: str | None, cluster: str | None, as_json: bool) -> None:
        _keys_dispatch(cluster, api, data_dir, {"op": op, "key": key}, as_json)


_key_command("install", "Install KEY: the node opens datagrams sealed with it (step 1 of a rotation).")
_key_command("use", "Make the installed KEY primary: the node seals with it (step 2).")
_key_command("remove", "Remove KEY, which must not be primary (step 3).")



from vudo.cli.spirit import spirit  # noqa: E402 - the group imports helpers from this module

cli.add_command(physarum)
cli.add_command(spirit)
cli.add_command(signal)
cli.add_command(credits)
cli.add_command(witness)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
