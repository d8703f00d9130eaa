"""Fixtures for the spirit tests: an author identity and a runtime."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vudo.identity import Identity
from vudo.spirits.runtime import SpiritRuntime


@pytest.fixture(scope="session")
def author() -> Identity:
    return Identity.generate()


@pytest.fixture()
def runtime() -> Iterator[SpiritRuntime]:
    rt = SpiritRuntime()
    try:
        yield rt
    finally:
        rt.close()
