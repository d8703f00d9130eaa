"""Prometheus metrics of one node (a private registry per node)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from vudo import _core


class _TransportCollector(Collector):
    """Exports the gossip transport's own counters (kept in Rust) at scrape time."""

    def __init__(self) -> None:
        self.stats: _core.TransportStats | None = None

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        stats = self.stats
        datagrams = CounterMetricFamily(
            "vudo_gossip_datagrams", "Gossip datagrams by direction (sent/received on the socket; sealed/opened by the keyring; fragmented; rewritten/truncated by open-gossip admission)",
            labels=["direction"],
        )
        rejected = CounterMetricFamily(
            "vudo_gossip_datagrams_rejected", "Gossip datagrams dropped before chitchat saw them", labels=["reason"]
        )
        refused = CounterMetricFamily(
            "vudo_gossip_ids_refused",
            "Node identities cut out of incoming open-gossip datagrams before chitchat saw them", labels=["reason"],
        )
        values_refused = CounterMetricFamily(
            "vudo_gossip_values_refused",
            "Key-value operations cut out of incoming open-gossip datagrams before chitchat saw them "
            "(long_key, long_value, or beyond an identity's keys/bytes budget)", labels=["reason"],
        )
        held_values = GaugeMetricFamily(
            "vudo_gossip_engine_key_values", "Key-values in the gossip engine's table (deletion tombstones included)",
        )
        held_bytes = GaugeMetricFamily(
            "vudo_gossip_engine_value_bytes", "Key + value bytes in the gossip engine's table",
        )
        released = CounterMetricFamily(
            "vudo_gossip_admission_released", "Admission slots freed because the engine forgot the identity",
        )
        admitted = GaugeMetricFamily(
            "vudo_gossip_engine_unverified", "Untrusted identities the gossip engine holds (admitted in open gossip)",
        )
        cap = GaugeMetricFamily(
            "vudo_gossip_engine_unverified_cap", "Most untrusted identities the gossip engine may hold (open gossip)",
        )
        if stats is not None:
            for reason, value in sorted(stats.ids_refused.items()):
                refused.add_metric([reason], value)
            for reason, value in sorted(stats.values_refused.items()):
                values_refused.add_metric([reason], value)
            held_values.add_metric([], stats.engine_key_values)
            held_bytes.add_metric([], stats.engine_value_bytes)
            released.add_metric([], stats.admission_released)
            admitted.add_metric([], stats.admitted_unverified)
            cap.add_metric([], stats.admission_cap)
            for direction, value in (("sent", stats.sent), ("received", stats.received),
                                     ("sealed", stats.sealed), ("opened", stats.opened),
                                     ("fragmented", stats.fragmented), ("rewritten", stats.rewritten),
                                     ("truncated", stats.truncated)):
                datagrams.add_metric([direction], value)
            for reason, value in sorted(stats.rejected.items()):
                rejected.add_metric([reason], value)
            rejected.add_metric(["foreign_loopback"], stats.foreign_loopback)
        yield datagrams
        yield rejected
        yield refused
        yield values_refused
        yield held_values
        yield held_bytes
        yield released
        yield admitted
        yield cap


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
        self.spirit_payments = Counter("vudo_spirit_payments", "Premium summon payments settled, by outcome (paid, voided, refused)",
                                       ["outcome"], registry=self.registry)

        self.links = Gauge("vudo_links", "Established (verified) hyphal links", registry=self.registry)
        self.link_events = Counter("vudo_link_events", "Link policy events", ["kind"], registry=self.registry)
        self.link_refusals = Counter("vudo_link_refusals", "Link handshakes that ended without a link", ["reason"], registry=self.registry)
        self.unverified = Gauge("vudo_gossip_members_unverified", "Nodes never verified that are kept in the view", registry=self.registry)
        self.unverified_cap = Gauge("vudo_gossip_unverified_cap", "Most never-verified nodes kept (older ones are evicted first)", registry=self.registry)
        self.unverified_evicted = Counter("vudo_gossip_unverified_evicted", "Never-verified nodes evicted by the cap", registry=self.registry)
        self.engine_states = Gauge("vudo_gossip_engine_states", "Chitchat identities in the engine's table (verified or not)", registry=self.registry)
        self.keyring = Gauge("vudo_gossip_sealed", "1 when gossip datagrams are sealed with a cluster keyring", registry=self.registry)
        self._transport = _TransportCollector()
        self.registry.register(self._transport)

    def observe_transport(self, stats: _core.TransportStats) -> None:
        self._transport.stats = stats
        self.keyring.set(1 if stats.sealed_transport else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
