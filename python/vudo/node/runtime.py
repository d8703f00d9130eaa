"""The runtime file: how CLI commands find the node running in a data dir."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RUNTIME_FILE = "node.json"


def write_runtime_file(data_dir: Path, *, node_id: str, api: str, gossip: str) -> None:
    path = data_dir / RUNTIME_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"node_id": node_id, "pid": os.getpid(), "api": api, "gossip": gossip}))
    tmp.replace(path)


def remove_runtime_file(data_dir: Path) -> None:
    (data_dir / RUNTIME_FILE).unlink(missing_ok=True)


def data_dir_runtime(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / RUNTIME_FILE
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
