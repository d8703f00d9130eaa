"""Prometheus metrics of one node (a private registry per node)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rejected = Counter(
            "vudo_gossip_values_rejected",
            "Gossip values dropped because they failed validation",
            ["key", "reason"],
            registry=self.registry,
        )
        self.members = Gauge("vudo_members", "Known members by status", ["status"], registry=self.registry)
        self.verified = Gauge("vudo_members_verified", "Alive members with a verified announcement", registry=self.registry)
        self.snapshots = Counter("vudo_gossip_snapshots", "Gossip views processed", registry=self.registry)
        self.events = Counter("vudo_membership_events", "Membership events", ["kind"], registry=self.registry)
        self.ready = Gauge("vudo_node_ready", "1 once the node has joined the network", registry=self.registry)
        self.gradient = Gauge("vudo_local_gradient", "Local resource availability", ["resource"], registry=self.registry)
        self.spirit_packages_rejected = Counter(
            "vudo_spirit_packages_rejected", "Spirit packages refused at install or summon", ["reason"], registry=self.registry,
        )
        self.spirit_calls = Counter("vudo_spirit_calls", "Calls into spirits", ["spirit"], registry=self.registry)
        self.spirit_fuel = Counter("vudo_spirit_fuel_used", "Fuel spirits used", ["spirit"], registry=self.registry)
        self.spirit_failures = Counter(
            "vudo_spirit_failures", "Spirits that failed (trap, out of fuel, timeout, refused summon)", ["spirit", "reason"],
            registry=self.registry,
        )
        self.spirits = Gauge("vudo_spirits", "Installed spirits by state", ["state"], registry=self.registry)

        self.links = Gauge("vudo_links", "Established (verified) hyphal links", registry=self.registry)
        self.link_events = Counter("vudo_link_events", "Link policy events", ["kind"], registry=self.registry)
        self.link_refusals = Counter("vudo_link_refusals", "Link handshakes that ended without a link", ["reason"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
