"""What every service offers the supervisor, and how it talks back to it.

A service owns one engine handle and the policies that decide for it. The
supervisor calls ``start`` (bind sockets, open files: errors here are the
operator's to fix and abort the start), then runs ``run`` as one task of
its task group until the node stops, calls ``leave`` when the lifecycle
announces the node is leaving, and finally ``stop`` (release the engine).
A service reports what matters to the lifecycle through the
:class:`NodeEvents` sink it gets in ``run``; it never calls another
service and never decides the node's phase.
"""

from __future__ import annotations

from typing import Protocol

from vudo.services.events import ServiceEvent


class NodeEvents(Protocol):
    """The supervisor's inbox, as a service sees it."""

    def emit(self, event: ServiceEvent) -> None: ...


class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    async def run(self, events: NodeEvents) -> None: ...

    def leave(self, now: float) -> None: ...

    async def stop(self) -> None: ...
