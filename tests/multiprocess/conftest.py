"""Fixtures for the multi-process tests (real `vudo node` processes on loopback).

* ``make_cluster`` (function): factory for :class:`cluster.LocalCluster`
  under ``tmp_path``; every cluster it made is closed (all nodes SIGKILLed)
  at teardown, pass or fail.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # make tests/cluster.py importable

from cluster import LocalCluster, kill_all_children  # noqa: E402


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., LocalCluster]]:
    made: list[LocalCluster] = []

    def factory(size: int, **kwargs: Any) -> LocalCluster:
        cluster = LocalCluster(tmp_path / f"cluster-{len(made)}", size, **kwargs)
        made.append(cluster)
        return cluster

    try:
        yield factory
    finally:
        for cluster in made:
            cluster.close()
        kill_all_children()
