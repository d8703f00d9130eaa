"""Monotonic gossip generations, persisted in the data dir.

Chitchat tells incarnations of one node apart by a *generation* number and
peers trust the newest one they can verify. A generation taken from the
clock alone goes backwards when the clock does (NTP step, VM restore), and
an old incarnation would then outrank the new one. So the node records the
last generation it used in ``<data_dir>/gossip-generation`` (written
atomically and fsynced before it is used) and always starts strictly above
it, whatever the clock says.
"""

from __future__ import annotations

import os
from pathlib import Path

from vudo.errors import IdentityError

GENERATION_FILE = "gossip-generation"
_MAX_GENERATION = 2**63 - 1


def read_generation(data_dir: Path) -> int | None:
    """The last generation used, or None when this data dir never gossiped."""
    path = data_dir / GENERATION_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    if not text.isdigit() or int(text) > _MAX_GENERATION:
        raise IdentityError(
            f"{path} holds {text[:40]!r}, not a generation number; "
            "restore it, or delete it only if no peer ever saw this node with a higher generation"
        )
    return int(text)


def write_generation(data_dir: Path, generation: int) -> None:
    """Durably record ``generation``: write a temp file, fsync, rename, fsync the dir."""
    path = data_dir / GENERATION_FILE
    tmp = path.with_name(GENERATION_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{generation}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def next_generation(data_dir: Path, *, clock_us: int) -> int:
    """A generation strictly above every one used before from ``data_dir``; recorded before returning."""
    last = read_generation(data_dir)
    generation = clock_us if last is None else max(clock_us, last + 1)
    if generation > _MAX_GENERATION:
        raise IdentityError(f"gossip generation overflow in {data_dir / GENERATION_FILE}")
    write_generation(data_dir, generation)
    return generation
