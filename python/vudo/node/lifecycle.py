"""The node's lifecycle policy: bootstrap -> alive -> leaving -> stopped.

Theory of operation
-------------------
The node is a supervisor: it starts services, feeds this class what
happens to them, and executes what it answers. The class decides nothing
about gossip, links or ledgers; it only knows the phases of a node's life
and what each transition asks the services to do. It never reads a clock:
every event carries ``now``.

    JOINING --Joined-------------> ALIVE    [MarkReady]
    JOINING --JoinFailed---------> LEAVING  [AnnounceLeave, ArmLeaveTimer]  exit 1
    JOINING --StopRequested------> LEAVING  [AnnounceLeave, ArmLeaveTimer]
    ALIVE   --StopRequested------> LEAVING  [MarkNotReady, AnnounceLeave, ArmLeaveTimer]
    JOINING/ALIVE --ServiceFailed> LEAVING  [MarkNotReady, AnnounceLeave, ArmLeaveTimer]  exit 1
    LEAVING --LeaveGraceElapsed--> STOPPED  [StopServices]
    LEAVING --ServiceFailed------> LEAVING  (exit 1, nothing else)
    STOPPED --anything-----------> STOPPED

Events not in the table are ignored in that state (a second stop request
while leaving, a late ``Joined`` while leaving, ...), and each handled event
is recorded with a sequence id for the log.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from vudo.services.events import Joined, JoinFailed, ServiceEvent


class Phase(enum.Enum):
    JOINING = "bootstrapping"
    ALIVE = "alive"
    LEAVING = "leaving"
    STOPPED = "stopped"


# -- events (besides what services report: vudo.services.events) -----------


@dataclass(frozen=True, slots=True)
class StopRequested:
    reason: str
    now: float


@dataclass(frozen=True, slots=True)
class ServiceFailed:
    service: str
    error: str
    now: float


@dataclass(frozen=True, slots=True)
class LeaveGraceElapsed:
    now: float


LifecycleEvent = ServiceEvent | StopRequested | ServiceFailed | LeaveGraceElapsed


# -- instructions ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarkReady:
    peers: int


@dataclass(frozen=True, slots=True)
class MarkNotReady:
    pass


@dataclass(frozen=True, slots=True)
class AnnounceLeave:
    """Tell every service the node is leaving (membership publishes its signed leave notice)."""


@dataclass(frozen=True, slots=True)
class ArmLeaveTimer:
    """Deliver :class:`LeaveGraceElapsed` after ``seconds`` (time for the notice to spread)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class StopServices:
    exit_code: int


Instruction = MarkReady | MarkNotReady | AnnounceLeave | ArmLeaveTimer | StopServices


@dataclass(frozen=True, slots=True)
class Handled:
    """The log record of one handled event."""

    id: int
    event: LifecycleEvent
    old: Phase
    new: Phase


class Lifecycle:
    def __init__(self, *, leave_grace_s: float) -> None:
        if leave_grace_s < 0:
            raise ValueError("leave_grace_s must be >= 0")
        self.leave_grace_s = leave_grace_s
        self.phase = Phase.JOINING
        self.exit_code = 0
        self.history: list[Handled] = []
        self._next_id = 0

    @property
    def ready(self) -> bool:
        return self.phase is Phase.ALIVE

    def _leave(self, *, was_ready: bool) -> list[Instruction]:
        out: list[Instruction] = [MarkNotReady()] if was_ready else []
        return [*out, AnnounceLeave(), ArmLeaveTimer(self.leave_grace_s)]

    def receive(self, event: LifecycleEvent) -> list[Instruction]:
        old = self.phase
        out: list[Instruction] = []
        match (old, event):
            case (Phase.JOINING, Joined(peers=peers)):
                self.phase = Phase.ALIVE
                out = [MarkReady(peers)]
            case (Phase.JOINING, JoinFailed()):
                self.exit_code = 1
                self.phase = Phase.LEAVING
                out = self._leave(was_ready=False)
            case (Phase.JOINING | Phase.ALIVE, StopRequested()):
                self.phase = Phase.LEAVING
                out = self._leave(was_ready=old is Phase.ALIVE)
            case (Phase.JOINING | Phase.ALIVE, ServiceFailed()):
                self.exit_code = 1
                self.phase = Phase.LEAVING
                out = self._leave(was_ready=old is Phase.ALIVE)
            case (Phase.LEAVING, ServiceFailed()):
                self.exit_code = 1
            case (Phase.LEAVING, LeaveGraceElapsed()):
                self.phase = Phase.STOPPED
                out = [StopServices(self.exit_code)]
            case _:
                return []
        self._next_id += 1
        self.history.append(Handled(self._next_id, event, old, self.phase))
        del self.history[:-64]
        return out
