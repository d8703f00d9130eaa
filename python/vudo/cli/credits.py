"""`vudo credits ...` and `vudo witness ...`: the credit ledger through a node's HTTP API.

Amounts on the command line and in tables are credits ("1.5"); ``--json``
prints the API's integer units (1 credit = 1 000 000 units) unchanged.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click
import httpx

from vudo.cli.output import print_json, style, table
from vudo.credits.transaction import credits_to_units, format_units

API_HELP = "node API URL [the node running in --data-dir]"
DATA_DIR_HELP = "node data directory (for the API URL and token)"


def _base(api: str | None, data_dir: str | None) -> str:
    from vudo.cli.main import _api_url

    return _api_url(api, data_dir)


def _token(token: str | None, data_dir: str | None) -> str:
    if token:
        return token
    from vudo.cli.main import _token as node_token

    return node_token(data_dir)


def _die(message: str, code: int = 1) -> NoReturn:
    click.echo(style(f"error: {message}", fg="red"), err=True)
    sys.exit(code)


def _call(method: str, url: str, *, token: str | None = None, body: dict[str, Any] | None = None,
          params: dict[str, str] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, url, json=body, headers=headers, params=params, timeout=60.0)
    except httpx.HTTPError as err:
        _die(f"cannot reach {url}: {err} (is the node running?)")
    try:
        data = response.json()
    except ValueError:
        data = {"detail": response.text}
    if response.status_code != 200:
        code = data.get("code") if isinstance(data, dict) else None
        detail = str(data.get("detail") if isinstance(data, dict) else data)
        if code and detail.startswith(f"{code}: "):
            detail = detail[len(code) + 2:]
        hint = ""
        if code == "no_leader":
            hint = " (no ledger leader now: is a majority of witnesses up? retrying with the same --id is safe)"
        elif code == "insufficient_funds":
            hint = " (see `vudo credits balance`)"
        _die(f"{code or response.status_code}: {detail}{hint}", 2 if response.status_code in (400, 401, 403, 404, 409, 422) else 1)
    return data


def _units(text: str) -> int:
    try:
        return credits_to_units(text)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _short(node_id: str | None) -> str:
    return "-" if not node_id else node_id if len(node_id) <= 20 else f"{node_id[:8]}…{node_id[-8:]}"


@click.group()
def credits() -> None:
    """Mycelial credits: balances, transfers and the ledger's state."""


@credits.command()
@click.argument("node_id", required=False)
@click.option("--all", "show_all", is_flag=True, help="every account")
@click.option("--local", is_flag=True, help="read this witness's replica instead of the leader's latest commit")
@click.option("--api", help=API_HELP)
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON (amounts in units)")
def balance(node_id: str | None, show_all: bool, local: bool, api: str | None, data_dir: str | None, as_json: bool) -> None:
    """A balance (this node's by default, or NODE_ID's), or every account with --all."""
    base = _base(api, data_dir)
    params = {"linearizable": "false"} if local else None
    if show_all:
        data = _call("GET", base + "/v1/credits/accounts", params=params)
        if as_json:
            print_json(data)
            return
        rows = [[a["node_id"], format_units(a["balance"]), format_units(a["locked"]), format_units(a["available"]),
                 format_units(a["earned_total"]), format_units(a["spent_total"])] for a in data["accounts"]]
        click.echo(table(["NODE", "BALANCE", "LOCKED", "AVAILABLE", "EARNED", "SPENT"], rows))
        click.echo(f"\ntotal minted {format_units(data['total_minted'])}  pool {format_units(data['pool'])}  (index {data['index']})")
        return
    if node_id is None:
        node_id = _call("GET", base + "/v1/node")["node_id"]
    data = _call("GET", base + f"/v1/credits/accounts/{node_id}", params=params)
    if as_json:
        print_json(data)
        return
    click.echo(table(["NODE", "BALANCE", "LOCKED", "AVAILABLE"],
                     [[data["node_id"], format_units(data["balance"]), format_units(data["locked"]), format_units(data["available"])]]))


@credits.command()
@click.argument("to")
@click.argument("amount")
@click.option("--fee", default="0", show_default=True, help="credits paid to the Bondieu pool on top")
@click.option("--memo", default="", help="a note recorded with the transfer (at most 256 bytes)")
@click.option("--id", "op_id", help="operation id (reuse it to retry safely) [a fresh one]")
@click.option("--api", help=API_HELP)
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--token", help="API bearer token [<data-dir>/api-token]")
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def transfer(to: str, amount: str, fee: str, memo: str, op_id: str | None, api: str | None, data_dir: str | None,
             token: str | None, as_json: bool) -> None:
    """Send AMOUNT credits (e.g. 1.5) from the node to TO, signed by the node."""
    body: dict[str, Any] = {"to": to, "amount": _units(amount), "fee": _units(fee), "memo": memo}
    if op_id:
        body["id"] = op_id
    data = _call("POST", _base(api, data_dir) + "/v1/credits/transfers", token=_token(token, data_dir), body=body)
    if as_json:
        print_json(data)
    else:
        verb = "committed" if data["status"] == "committed" else "already committed (same id)"
        click.echo(f"{data['id']} {verb} at index {data['index']}")


@credits.command()
@click.argument("node_id", required=False)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="most entries, newest first")
@click.option("--api", help=API_HELP)
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON (amounts in units)")
def history(node_id: str | None, limit: int, api: str | None, data_dir: str | None, as_json: bool) -> None:
    """The latest operations on an account (this node's by default): transfers in and out, locks, refusals."""
    base = _base(api, data_dir)
    if node_id is None:
        node_id = _call("GET", base + "/v1/node")["node_id"]
    data = _call("GET", base + f"/v1/credits/accounts/{node_id}/history", params={"limit": str(limit)})
    if as_json:
        print_json(data)
        return
    rows = []
    for e in data["entries"]:
        sign = "+" if e["incoming"] else "-"
        amount = f"{sign}{format_units(e['amount'])}" + (f" (fee {format_units(e['fee'])})" if e["fee"] else "")
        status = style(e["status"], fg="green") if e["status"] == "applied" else style(f"rejected: {e['code']}", fg="red")
        rows.append([str(e["index"]), e["kind"], amount, _short(e["counterparty"]), status, e["op_id"], e["memo"][:30]])
    click.echo(table(["INDEX", "KIND", "CREDITS", "WITH", "STATUS", "ID", "MEMO"], rows))


@credits.command("tx")
@click.argument("op_ids", nargs=-1, required=True)
@click.option("--api", help=API_HELP)
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def show_ops(op_ids: tuple[str, ...], api: str | None, data_dir: str | None, as_json: bool) -> None:
    """What became of operations OP_IDS (applied at an index, or rejected with a code)."""
    base = _base(api, data_dir)
    found = [_call("GET", base + f"/v1/credits/transfers/{op_id}") for op_id in op_ids]
    if as_json:
        print_json({"operations": found})
        return
    rows = [[r["id"], style(r["status"], fg="green" if r["status"] == "applied" else "red"), str(r["index"]), r["code"] or "-"]
            for r in found]
    click.echo(table(["ID", "STATUS", "INDEX", "CODE"], rows))


def _print_summary(data: dict[str, Any]) -> None:
    rows = [
        ["leader", _short(data["leader"])], ["term", str(data["term"])], ["last applied", str(data["last_applied"])],
        ["witnesses", ", ".join(_short(w) for w in data["witnesses"]) or "-"],
        ["raft voters", ", ".join(_short(w) for w in data["voters"]) or "-"],
        ["total minted", format_units(data["total_minted"])], ["pool", format_units(data["pool"])],
        ["sum of balances", format_units(data["sum_balances"])], ["accounts", str(data["accounts"])],
        ["open locks", str(data["open_locks"])], ["state hash", data["state_hash"][:16] + "…"],
    ]
    click.echo(table(["", ""], rows))


@credits.command()
@click.option("--local", is_flag=True, help="this witness's replica instead of the leader's latest commit")
@click.option("--api", help=API_HELP)
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def status(local: bool, api: str | None, data_dir: str | None, as_json: bool) -> None:
    """The ledger: leader, term, applied index, witnesses, totals and state hash."""
    data = _call("GET", _base(api, data_dir) + "/v1/credits/summary", params={"linearizable": "false"} if local else None)
    if as_json:
        print_json(data)
    else:
        _print_summary(data)


@click.group()
def witness() -> None:
    """The witness cluster: found it, give the genesis, propose and vote."""


@witness.command("init")
@click.argument("witness_ids", nargs=-1, required=True)
@click.option("--api", help=API_HELP)
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--token", help="API bearer token [<data-dir>/api-token]")
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def witness_init(witness_ids: tuple[str, ...], api: str | None, data_dir: str | None, token: str | None, as_json: bool) -> None:
    """Found the ledger's Raft cluster with WITNESS_IDS. Run it against every founding witness with the same list."""
    data = _call("POST", _base(api, data_dir) + "/v1/credits/witnesses/init", token=_token(token, data_dir),
                 body={"witnesses": list(witness_ids)})
    if as_json:
        print_json(data)
    else:
        click.echo(f"founded: voters {', '.join(data['voters']) or '(pending)'}")


@witness.command("genesis")
@click.argument("allocations", nargs=-1, required=True, metavar="NODE_ID=CREDITS...")
@click.option("--threshold-permille", type=click.IntRange(1, 1000), default=670, show_default=True,
              help="share of witnesses whose votes pass a proposal")
@click.option("--api", help=API_HELP)
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--token", help="API bearer token [<data-dir>/api-token]")
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def witness_genesis(allocations: tuple[str, ...], threshold_permille: int, api: str | None, data_dir: str | None,
                    token: str | None, as_json: bool) -> None:
    """The founding allocation (once per ledger), e.g. `12D3Koo...=1000`."""
    parsed: dict[str, int] = {}
    for item in allocations:
        node_id, sep, amount = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NODE_ID=CREDITS")
        parsed[node_id] = _units(amount)
    data = _call("POST", _base(api, data_dir) + "/v1/credits/genesis", token=_token(token, data_dir),
                 body={"allocations": parsed, "threshold_permille": threshold_permille})
    if as_json:
        print_json(data)
    else:
        click.echo(f"genesis {data['status']} at index {data['index']}")


@witness.command("status")
@click.option("--api", help=API_HELP)
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def witness_status(api: str | None, data_dir: str | None, as_json: bool) -> None:
    """This witness's own replica (no leader needed): its Raft state, term and applied index."""
    data = _call("GET", _base(api, data_dir) + "/v1/credits/summary", params={"linearizable": "false"})
    if as_json:
        print_json(data)
    else:
        click.echo(f"raft state: {data['state']}")
        _print_summary(data)


@witness.command("propose")
@click.argument("action", type=click.Choice(["mint", "add_witness", "remove_witness"]))
@click.argument("target")
@click.option("--amount", default="0", show_default=True, help="credits to mint (mint only)")
@click.option("--id", "op_id", help="proposal id [a fresh one]")
@click.option("--api", help=API_HELP)
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--token", help="API bearer token [<data-dir>/api-token]")
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def witness_propose(action: str, target: str, amount: str, op_id: str | None, api: str | None, data_dir: str | None,
                    token: str | None, as_json: bool) -> None:
    """Propose a quorum decision (this node must be a witness); prints the proposal id."""
    body: dict[str, Any] = {"action": action, "target": target, "amount": _units(amount)}
    if op_id:
        body["id"] = op_id
    data = _call("POST", _base(api, data_dir) + "/v1/credits/proposals", token=_token(token, data_dir), body=body)
    if as_json:
        print_json(data)
    else:
        click.echo(data["id"])


@witness.command("vote")
@click.argument("proposal_id")
@click.option("--reject", is_flag=True, help="vote against (default: approve)")
@click.option("--api", help=API_HELP)
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--token", help="API bearer token [<data-dir>/api-token]")
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def witness_vote(proposal_id: str, reject: bool, api: str | None, data_dir: str | None, token: str | None, as_json: bool) -> None:
    """Vote on a proposal as this witness, then show it."""
    base = _base(api, data_dir)
    _call("POST", base + f"/v1/credits/proposals/{proposal_id}/votes", token=_token(token, data_dir), body={"approve": not reject})
    data = _call("GET", base + f"/v1/credits/proposals/{proposal_id}")
    if as_json:
        print_json(data)
    else:
        click.echo(f"{data['id']}: {data['action']} {_short(data['target'])} — {data['state']} "
                   f"({data['approvals']} for, {data['rejections']} against)")
