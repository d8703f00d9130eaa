"""`vudo spirit ...` — pack, verify and inspect packages; install, summon and dismiss them on a node."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx

from vudo.cli.output import print_json, style, table
from vudo.errors import VudoError
from vudo.identity import load_api_token, load_identity
from vudo.spirits.errors import SpiritError
from vudo.spirits.package import MAX_ARCHIVE_BYTES, Package, pack_dir, read_package
from vudo.spirits.runtime import SpiritRuntime, check_module_against_manifest

STATE_COLOURS = {"running": "green", "failed": "red", "summoning": "yellow", "dismissing": "yellow"}


def _fail(message: str, code: int = 1) -> None:
    click.echo(style(f"error: {message}", fg="red"), err=True)
    sys.exit(code)


def _data_dir(value: str | None) -> Path:
    from vudo.cli.main import _data_dir as resolve

    return resolve(value)


def _read_file(path: str) -> bytes:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_ARCHIVE_BYTES:
            _fail(f"{path} is {size} bytes, above the {MAX_ARCHIVE_BYTES}-byte package limit")
        return p.read_bytes()
    except OSError as err:
        _fail(f"cannot read {path}: {err.strerror}")
    raise AssertionError("unreachable")


def _verified(path: str) -> Package:
    try:
        return read_package(_read_file(path))
    except SpiritError as err:
        _fail(f"{path}: refused ({err.reason}): {err}")
    raise AssertionError("unreachable")


def _package_json(package: Package) -> dict[str, Any]:
    import msgspec

    return {"manifest": msgspec.to_builtins(package.manifest), "package_sha256": package.sha256,
            "signed_by": package.claim.node_id, "files": {p: len(d) for p, d in sorted(package.files.items())}}


@click.group()
def spirit() -> None:
    """Spirit packages and the spirits of a node."""


@spirit.command("pack")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="the .spirit file to write")
@click.option("--data-dir", help="the author's node data directory (its key signs the package)")
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def pack_cmd(directory: str, output: str, data_dir: str | None, as_json: bool) -> None:
    """Pin the files of DIRECTORY/spirit.toml by hash, sign with this node's key, write a .spirit."""
    try:
        identity = load_identity(_data_dir(data_dir))
        data = pack_dir(Path(directory), identity)
        package = read_package(data)
    except VudoError as err:
        _fail(str(err), 2)
    _check_modules(package)
    Path(output).write_bytes(data)
    if as_json:
        print_json({**_package_json(package), "output": output, "bytes": len(data)})
    else:
        m = package.manifest
        click.echo(f"{output}: {m.name}@{m.version} rev {m.rev}, {len(package.files)} file(s), {len(data)} bytes, sha256 {package.sha256}")


def _check_modules(package: Package) -> None:
    """Compile every module and hold it against its manifest entry (imports and exports)."""
    runtime = SpiritRuntime(epochs=False)
    try:
        for module in package.manifest.modules:
            compiled = runtime.compile(module.sha256, package.files[module.path], what=module.path)
            check_module_against_manifest(compiled, module, package.name)
    except SpiritError as err:
        _fail(f"{package.name}: {err}")
    finally:
        runtime.close()


@spirit.command("verify")
@click.argument("package_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def verify_cmd(package_file: str, as_json: bool) -> None:
    """Check the signature, every hash and the archive itself; exit 1 when refused."""
    package = _verified(package_file)
    _check_modules(package)
    m = package.manifest
    if as_json:
        print_json({"ok": True, "name": m.name, "version": m.version, "rev": m.rev, "author": m.author, "package_sha256": package.sha256})
    else:
        click.echo(f"OK {m.name}@{m.version} rev {m.rev}, signed by {m.author}")


@spirit.command("inspect")
@click.argument("package_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def inspect_cmd(package_file: str, as_json: bool) -> None:
    """Show a package's manifest (after verifying it)."""
    package = _verified(package_file)
    if as_json:
        print_json(_package_json(package))
        return
    m = package.manifest
    p = m.permissions
    click.echo(f"{m.name}@{m.version} rev {m.rev} — {m.description or 'no description'}")
    click.echo(f"author   {m.author}\nlicense  {m.license}\ntags     {', '.join(m.tags) or '-'}")
    click.echo(f"tier     {m.tier.kind}" + (f" ({m.tier.price} credits)" if m.tier.kind == "premium" else ""))
    click.echo(f"asks     network={p.network} compute={p.compute} display={p.display} wasi={str(p.wasi).lower()}")
    b = m.budget
    click.echo(f"budget   {b.fuel_per_call} fuel/call, {b.wall_ms} ms/call, {b.memory_bytes // (1024 * 1024)} MiB memory")
    rows = [[path, str(len(package.files[path])), digest[:16], "entry" if path == m.entry else ("module" if path.endswith(".wasm") else "asset")]
            for path, digest in sorted(m.files().items())]
    click.echo(table(["FILE", "BYTES", "SHA256", "ROLE"], rows))
    entry = m.entry_module()
    click.echo(f"exports  {', '.join(entry.exports)}\nimports  {', '.join(entry.imports) or '-'}")


# -- talking to a node ----------------------------------------------------------------------


def _node(api: str | None, data_dir: str | None) -> str:
    from vudo.cli.main import _api_url

    return _api_url(api, data_dir)


def _token(data_dir: str | None) -> str:
    try:
        return load_api_token(_data_dir(data_dir))
    except VudoError as err:
        _fail(str(err), 2)
    raise AssertionError("unreachable")


def _call(method: str, url: str, *, token: str | None = None, content: bytes | None = None, ok: tuple[int, ...] = (200,),
          params: dict[str, str] | None = None, json_body: dict[str, Any] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if content is not None:
        headers["Content-Type"] = "application/octet-stream"
    try:
        response = httpx.request(method, url, headers=headers, content=content, params=params, json=json_body, timeout=60.0)
    except httpx.HTTPError as err:
        _fail(f"cannot reach {url}: {err} (is the node running?)")
    if response.status_code not in ok:
        try:
            body = response.json()
            detail = f"{body.get('detail')} ({body.get('reason', response.status_code)})"
        except ValueError:
            detail = response.text[:300]
        _fail(f"{url} answered {response.status_code}: {detail}")
    return response.json()


def _row(s: dict[str, Any]) -> list[str]:
    state = s["state"]
    return [s["name"], s["version"], str(s["rev"]), style(state, fg=STATE_COLOURS.get(state, "white")),
            s["permissions"]["network"] + "/" + s["permissions"]["compute"] + "/" + s["permissions"]["display"],
            ", ".join(s["missing"]) or "-", str(s["fuel_used_total"]), str(s["memory_bytes"]), s["error"] or ""]


_HEADERS = ["NAME", "VERSION", "REV", "STATE", "ASKS", "NOT GRANTED", "FUEL", "MEMORY", "ERROR"]
_API = click.option("--api", help="node API URL [the node running in --data-dir]")
_DATA = click.option("--data-dir", help="node data directory (for the API URL and token)")
_JSON = click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")


@spirit.command("install")
@click.argument("package_file", type=click.Path(dir_okay=False))
@_API
@_DATA
@_JSON
def install_cmd(package_file: str, api: str | None, data_dir: str | None, as_json: bool) -> None:
    """Install a .spirit on a node (verified there again)."""
    body = _call("POST", _node(api, data_dir) + "/v1/spirits", token=_token(data_dir), content=_read_file(package_file), ok=(201,))
    print_json(body) if as_json else click.echo(table(_HEADERS, [_row(body)]))


@spirit.command("list")
@_API
@_DATA
@_JSON
def list_cmd(api: str | None, data_dir: str | None, as_json: bool) -> None:
    """The spirits installed on a node, with their state."""
    body = _call("GET", _node(api, data_dir) + "/v1/spirits")
    print_json(body) if as_json else click.echo(table(_HEADERS, [_row(s) for s in body["spirits"]]))


@spirit.command("summon")
@click.argument("name")
@_API
@_DATA
@_JSON
def summon_cmd(name: str, api: str | None, data_dir: str | None, as_json: bool) -> None:
    """Summon an installed spirit (refused, naming what is missing, beyond its grant)."""
    body = _call("POST", _node(api, data_dir) + f"/v1/spirits/{name}/summon", token=_token(data_dir))
    print_json(body) if as_json else click.echo(table(_HEADERS, [_row(body)]))


@spirit.command("dismiss")
@click.argument("name")
@_API
@_DATA
@_JSON
def dismiss_cmd(name: str, api: str | None, data_dir: str | None, as_json: bool) -> None:
    """Dismiss a running spirit (its dismiss hook runs, then its instance is dropped)."""
    body = _call("POST", _node(api, data_dir) + f"/v1/spirits/{name}/dismiss", token=_token(data_dir))
    print_json(body) if as_json else click.echo(table(_HEADERS, [_row(body)]))


@spirit.command("uninstall")
@click.argument("name")
@_API
@_DATA
@_JSON
def uninstall_cmd(name: str, api: str | None, data_dir: str | None, as_json: bool) -> None:
    """Remove an installed spirit and its stored package (dismiss it first if it runs)."""
    body = _call("DELETE", _node(api, data_dir) + f"/v1/spirits/{name}", token=_token(data_dir))
    if as_json:
        print_json(body)
    else:
        click.echo(f"uninstalled {body['name']} {body['version']} (rev {body['rev']})")


@spirit.command("logs")
@click.argument("name")
@_API
@_DATA
@_JSON
def logs_cmd(name: str, api: str | None, data_dir: str | None, as_json: bool) -> None:
    """A spirit's recent log lines."""
    body = _call("GET", _node(api, data_dir) + f"/v1/spirits/{name}/logs")
    if as_json:
        print_json(body)
        return
    rows = [[datetime.fromtimestamp(line["time"], UTC).strftime("%H:%M:%S.%f")[:-3], line["level"], line["text"]] for line in body["lines"]]
    click.echo(table(["TIME", "LEVEL", "TEXT"], rows))


# -- the marketplace --------------------------------------------------------------------------


def _size(n: int) -> str:
    return f"{n / 1048576:.1f} MiB" if n >= 1048576 else f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


@spirit.command("search")
@click.argument("query", required=False, default="")
@_API
@_DATA
@_JSON
def search_cmd(query: str, api: str | None, data_dir: str | None, as_json: bool) -> None:
    """Spirits offered across the network (verified catalogues), filtered by QUERY (name or author)."""
    body = _call("GET", _node(api, data_dir) + "/v1/marketplace", params={"q": query} if query else None)
    if as_json:
        print_json(body)
        return
    rows = [[o["name"], o["version"], str(o["rev"]), o["author"][:16] + "…",
             o["tier"] + (f" ({o['price']})" if o["tier"] == "premium" else ""), _size(o["size"]), o["sha256"][:16],
             str(len(o["offered_by"])), "yes" if o["installed_here"] else ""]
            for o in body["offers"]]
    click.echo(table(["NAME", "VERSION", "REV", "AUTHOR", "TIER", "SIZE", "SHA256", "NODES", "INSTALLED"], rows))


@spirit.command("fetch")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--timeout", default=300.0, show_default=True, help="seconds to wait for the download")
@_API
@_DATA
@_JSON
def fetch_cmd(ref: str, timeout: float, api: str | None, data_dir: str | None, as_json: bool) -> None:
    """Download a package over the links from a node that offers it (verified), then install it here."""
    import time

    base = _node(api, data_dir)
    job = _call("POST", base + "/v1/spirits/fetch", token=_token(data_dir), json_body={"name": ref}, ok=(202,))
    deadline = time.monotonic() + timeout
    shown = -1

    def bar(received: int) -> None:
        pct = 100 * received // max(1, job["size"])
        click.echo(f"\r{job['name']}@{job['version']} [{'#' * (pct // 5):.<20}] {pct:3d}% {_size(received)} of "
                   f"{_size(job['size'])} from {(job['source'] or '?')[:16]}…", nl=False, err=True)

    while job["state"] == "fetching":
        if time.monotonic() > deadline:
            _fail(f"fetch {job['id']} still running after {timeout:g}s ({job['received']} of {job['size']} bytes)")
        if not as_json and job["received"] != shown:
            shown = job["received"]
            bar(shown)
        time.sleep(0.2)
        job = _call("GET", base + f"/v1/spirits/fetch/{job['id']}")
    if not as_json and job["state"] == "installed" and job["source"]:
        bar(job["size"])
        shown = job["size"]
    if not as_json and shown >= 0:
        click.echo("", err=True)
    for tried in job["tried"]:
        click.echo(style(f"source {tried['peer'][:16]}… failed: {tried['reason']}", fg="yellow"), err=True)
    if job["state"] == "failed":
        _fail(f"fetch of {ref} failed ({job['error_reason']}): {job['error']}")
    if as_json:
        print_json(job)
    else:
        click.echo(f"installed {job['name']}@{job['version']} ({_size(job['size'])}, sha256 {job['sha256'][:16]}) "
                   f"from {job['source'] or 'this node'}; summon it with `vudo spirit summon {job['name']}`")
