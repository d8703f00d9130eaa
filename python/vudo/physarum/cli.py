"""``vudo physarum run``: run the Physarum model on a graph file.

    vudo physarum run --graph G.json [--params P.json] --steps N --seed S --out R.json

Writes R.json (edges with conductivity/radius/flow, node pressures, metrics) and
prints the metrics as JSON on stdout. Progress goes to stderr. Exit code 2 on
bad input (missing file, invalid JSON, a field that fails validation).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import msgspec

from .graph import decode_graph
from .params import PhysarumParams, decode_params
from .run import run_graph, stderr_progress


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise click.UsageError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None


@click.group(name="physarum")
def physarum() -> None:
    """The Physarum polycephalum network model (Tero et al.)."""


@physarum.command(name="run")
@click.option("--graph", "graph_path", type=click.Path(path_type=Path), required=True, help="G.json")
@click.option("--params", "params_path", type=click.Path(path_type=Path), default=None, help="P.json")
@click.option("--steps", type=click.IntRange(0, 10_000_000), required=True)
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=0, show_default=True)
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True, help="R.json")
@click.option("--backend", type=click.Choice(["wasm", "native"]), default="wasm", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def run_cmd(
    graph_path: Path, params_path: Path | None, steps: int, seed: int, out_path: Path, backend: str, quiet: bool
) -> None:
    """Run GRAPH for STEPS steps and write the result to OUT."""
    try:
        graph = decode_graph(_read(graph_path, "graph"))
        params = decode_params(_read(params_path, "params")) if params_path else PhysarumParams()
        params.check()
    except ValueError as exc:
        raise click.UsageError(f"{exc}") from None
    progress = None if quiet or steps < 200 else stderr_progress
    try:
        result = run_graph(graph, params, steps, seed, backend="native" if backend == "native" else "wasm",
                           progress=progress)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        out_path.write_bytes(msgspec.json.encode(result))
    except OSError as exc:
        raise click.ClickException(f"cannot write {out_path}: {exc.strerror or exc}") from None
    click.echo(json.dumps(result["metrics"], sort_keys=True))


def main() -> None:
    physarum(prog_name="python -m vudo.physarum")
