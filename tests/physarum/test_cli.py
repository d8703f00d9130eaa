"""`vudo physarum run` end to end, and its error handling."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from vudo.physarum.cli import physarum


def write(tmp: Path, name: str, obj: object) -> Path:
    p = tmp / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


GRAPH = {
    "nodes": [{"id": "s", "x": 0, "y": 0}, {"id": "m", "x": 1, "y": 1}, {"id": "t", "x": 2, "y": 0}, {"id": "d", "x": 1, "y": -3}],
    "edges": [{"a": "s", "b": "t"}, {"a": "s", "b": "m"}, {"a": "m", "b": "t"}, {"a": "s", "b": "d"}, {"a": "d", "b": "t"}],
    "food": ["s", "t"],
}


def test_run_writes_result_with_metrics(tmp_path: Path) -> None:
    g = write(tmp_path, "g.json", GRAPH)
    p = write(tmp_path, "p.json", {"dt": 1.0, "mu": 1.0})
    out = tmp_path / "r.json"
    res = CliRunner().invoke(physarum, ["run", "--graph", str(g), "--params", str(p), "--steps", "300", "--seed", "4", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    alive = [(e["a"], e["b"]) for e in r["edges"] if e["alive"]]
    assert alive == [("s", "t")]
    m = r["metrics"]
    assert m["total_length"] == 2.0 and m["mst_total_length"] == 2.0 and m["total_length_ratio"] == 1.0
    assert m["fault_tolerance"] == 0.0 and m["max_kirchhoff_residual"] < 1e-9
    assert {n["id"] for n in r["nodes"]} == {"s", "m", "t", "d"}
    assert json.loads(res.output.strip().splitlines()[-1])["alive_tubes"] == 1


def test_errors_name_the_problem(tmp_path: Path) -> None:
    run = CliRunner().invoke
    base = ["run", "--steps", "5", "--out", str(tmp_path / "r.json")]
    r = run(physarum, base + ["--graph", str(tmp_path / "missing.json")])
    assert r.exit_code == 2 and "cannot read graph file" in r.output
    r = run(physarum, base + ["--graph", str(write(tmp_path, "bad.json", "{nope"))])
    assert r.exit_code == 2 and "not valid JSON" in r.output
    bad_edge = dict(GRAPH, edges=[{"a": "s", "b": "zz"}])
    r = run(physarum, base + ["--graph", str(write(tmp_path, "e.json", bad_edge))])
    assert r.exit_code == 2 and "edges[0].b" in r.output
    bad_len = dict(GRAPH, edges=[{"a": "s", "b": "t", "length": -1}])
    r = run(physarum, base + ["--graph", str(write(tmp_path, "l.json", bad_len))])
    assert r.exit_code == 2 and "edges[0].length" in r.output
    bad_food = dict(GRAPH, food=["s", "q"])
    r = run(physarum, base + ["--graph", str(write(tmp_path, "f.json", bad_food))])
    assert r.exit_code == 2 and "food[1]" in r.output
    g = write(tmp_path, "g.json", GRAPH)
    r = run(physarum, base + ["--graph", str(g), "--params", str(write(tmp_path, "p.json", {"gamma": -2}))])
    assert r.exit_code == 2 and "gamma" in r.output
    r = run(physarum, base + ["--graph", str(g), "--params", str(write(tmp_path, "p2.json", {"colour": 1}))])
    assert r.exit_code == 2 and "colour" in r.output
