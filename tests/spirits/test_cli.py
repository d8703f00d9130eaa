"""`vudo spirit pack|verify|inspect` in-process (the node-facing commands run in the multi-process test)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from spirits.support import write_source_dir
from vudo.cli.main import cli
from vudo.identity import init_data_dir


def test_pack_verify_inspect(tmp_path: Path) -> None:
    identity = init_data_dir(tmp_path / "author")
    src = write_source_dir(tmp_path / "src")
    out = tmp_path / "hello.spirit"
    runner = CliRunner()
    packed = runner.invoke(cli, ["spirit", "pack", str(src), "-o", str(out), "--data-dir", str(tmp_path / "author")])
    assert packed.exit_code == 0, packed.output
    assert "hello@1.0.0 rev 1" in packed.output
    verified = runner.invoke(cli, ["spirit", "verify", str(out), "--json"])
    assert verified.exit_code == 0 and json.loads(verified.output)["author"] == identity.node_id
    inspected = runner.invoke(cli, ["spirit", "inspect", str(out)])
    assert inspected.exit_code == 0
    assert "display=required" in inspected.output and "web/index.html" in inspected.output and "entry" in inspected.output
    as_json = json.loads(runner.invoke(cli, ["spirit", "inspect", str(out), "--json"]).output)
    assert as_json["manifest"]["permissions"]["compute"] == "minimal" and as_json["files"]["main.wasm"] > 0

    data = bytearray(out.read_bytes())
    data[600] ^= 0x01
    bad = tmp_path / "bad.spirit"
    bad.write_bytes(bytes(data))
    refused = runner.invoke(cli, ["spirit", "verify", str(bad)])
    assert refused.exit_code == 1 and "refused" in refused.output
    missing = runner.invoke(cli, ["spirit", "verify", str(tmp_path / "nope.spirit")])
    assert missing.exit_code == 1 and "cannot read" in missing.output


def test_pack_refuses_a_module_that_breaks_its_manifest(tmp_path: Path) -> None:
    init_data_dir(tmp_path / "author")
    src = write_source_dir(tmp_path / "src")
    text = (src / "spirit.toml").read_text().replace('"vudo.now_ms"', '"vudo.topology"').replace('network = "none"', 'network = "read"')
    (src / "spirit.toml").write_text(text)
    result = CliRunner().invoke(cli, ["spirit", "pack", str(src), "-o", str(tmp_path / "x.spirit"), "--data-dir", str(tmp_path / "author")])
    assert result.exit_code == 1 and "vudo.now_ms" in result.output
    assert not (tmp_path / "x.spirit").exists()
