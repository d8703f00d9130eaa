"""The ``entheogen`` bootstrap, as a state machine.

Theory of operation
-------------------
identity -> gossip with seed peers -> announce -> wait for
``min_connections`` verified peers -> alive. The node performs the first
three steps (they are local) and then feeds this class a timer tick with
the current membership; the class answers with instructions: progress
lines for the operator, ``Alive`` once enough verified peers are seen, or
``Failed`` with a message naming each seed and why it did not help.

    WAITING --enough verified peers--> ALIVE
    WAITING --timeout--> FAILED

A seed "did not help" for one of three reasons, reported per seed:
nothing answered from its address; it answered but its announcement was
rejected (with the reason); or it answered and is verified but is not
alive.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from vudo.hyphal.membership import MemberRecord


class Phase(enum.Enum):
    WAITING = "waiting"
    ALIVE = "alive"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Progress:
    message: str


@dataclass(frozen=True, slots=True)
class Alive:
    peers: int


@dataclass(frozen=True, slots=True)
class Failed:
    message: str


Instruction = Progress | Alive | Failed


class Bootstrap:
    def __init__(
        self,
        *,
        seeds: list[str],
        min_connections: int,
        timeout: float,
        started: float,
        progress_every: float = 2.0,
    ) -> None:
        if min_connections < 0:
            raise ValueError("min_connections must be >= 0")
        self.seeds = seeds
        self.min_connections = min_connections
        self.timeout = timeout
        self.started = started
        self.progress_every = progress_every
        self.phase = Phase.WAITING
        self._last_progress = started - progress_every
        self._attempt = 0

    def _seed_report(self, members: list[MemberRecord]) -> list[str]:
        by_addr = {m.gossip_addr: m for m in members if not m.is_self}
        lines = []
        for seed in self.seeds:
            member = by_addr.get(seed)
            if member is None:
                lines.append(f"{seed}: no answer yet (is a node running there? is the port right?)")
            elif not member.verified and member.rejected:
                reasons = ", ".join(f"{k}={v}" for k, v in sorted(member.rejected.items()))
                lines.append(f"{seed}: answered as {member.node_id} but its values were rejected ({reasons})")
            elif not member.verified:
                lines.append(f"{seed}: answered as {member.node_id}, announcement not received yet")
            elif member.status != "alive":
                lines.append(f"{seed}: {member.node_id} is {member.status}")
            else:
                lines.append(f"{seed}: joined via {member.node_id}")
        return lines

    def handle_timer(self, now: float, members: list[MemberRecord]) -> list[Instruction]:
        if self.phase is not Phase.WAITING:
            return []
        verified = [m for m in members if not m.is_self and m.verified and m.status == "alive"]
        if len(verified) >= self.min_connections:
            self.phase = Phase.ALIVE
            return [Alive(len(verified))]
        elapsed = now - self.started
        if elapsed >= self.timeout:
            self.phase = Phase.FAILED
            detail = "; ".join(self._seed_report(members)) or "no seeds were given (pass --seed HOST:PORT)"
            return [
                Failed(
                    f"could not find {self.min_connections} verified peer(s) within {self.timeout:.0f}s "
                    f"(found {len(verified)}). Seeds: {detail}"
                )
            ]
        if now - self._last_progress < self.progress_every:
            return []
        self._last_progress = now
        self._attempt += 1
        out: list[Instruction] = [
            Progress(
                f"waiting for {self.min_connections} verified peer(s), have {len(verified)} "
                f"(attempt {self._attempt}, {elapsed:.0f}s of {self.timeout:.0f}s)"
            )
        ]
        out.extend(Progress("  seed " + line) for line in self._seed_report(members))
        return out
