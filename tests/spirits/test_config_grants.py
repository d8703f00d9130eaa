"""`[spirits.allow.NAME]` in vudo.toml: what the operator grants each spirit."""

from __future__ import annotations

from pathlib import Path

import pytest

from vudo.config import load_config
from vudo.errors import ConfigError
from vudo.spirits.manifest import Permissions


def config_with(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "vudo.toml").write_text(text)
    return load_config({"data_dir": str(tmp_path)}, env={})


def test_grants_are_read_per_spirit(tmp_path: Path) -> None:
    cfg = config_with(tmp_path, """
spirit_tick_ms = 250
[spirits.allow.physarum]
network = "read"
display = "required"
[spirits.allow.calc]
compute = "heavy"
wasi = true
""")
    assert cfg.spirit_tick_ms == 250
    assert cfg.spirit_grant("physarum") == Permissions(network="read", display="required")
    assert cfg.spirit_grant("calc") == Permissions(compute="heavy", wasi=True)
    assert cfg.spirit_grant("other") is None
    assert [name for name, _ in cfg.spirit_grants] == ["calc", "physarum"]


@pytest.mark.parametrize(("text", "match"), [
    ('[spirits.allow.x]\nnetwork = "everything"\n', "network"),
    ('[spirits.allow.x]\ncpu = "heavy"\n', "cpu"),
    ('[spirits.allow."Bad Name"]\nnetwork = "read"\n', "not a spirit name"),
    ('[spirits]\ndeny = 1\n', "only an `allow` table"),
    ('[spirits]\nallow = 3\n', "must be a table"),
    ("spirit_tick_ms = 1\n", "spirit_tick_ms"),
])
def test_bad_grants_are_config_errors(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config_with(tmp_path, text)
