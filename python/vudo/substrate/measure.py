"""Measure the real machine: capabilities and availability in [0, 1].

The meter is the only place that reads the OS; it keeps the previous
network counters so bandwidth use is a rate between two readings.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from vudo.hyphal.capability import Capability, Compute, Gateway, Storage, Witness


@dataclass(frozen=True, slots=True)
class Availability:
    compute: float
    storage: float
    bandwidth: float


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


class ResourceMeter:
    def __init__(self, data_dir: Path, *, bandwidth_capacity_mbps: float) -> None:
        if bandwidth_capacity_mbps <= 0:
            raise ValueError("bandwidth capacity must be positive")
        self.data_dir = data_dir
        self.capacity_bytes_per_s = bandwidth_capacity_mbps * 1e6 / 8
        self._net: tuple[float, int] | None = None
        psutil.cpu_percent(interval=None)  # prime the CPU counter

    def capabilities(self, *, storage_iops: int, gateway_protocols: tuple[str, ...], witness_stake: int | None) -> tuple[Capability, ...]:
        disk = psutil.disk_usage(str(self.data_dir))
        caps: list[Capability] = [
            Compute(cores=os.cpu_count() or 1, memory_mb=psutil.virtual_memory().total // 2**20),
            Storage(capacity_mb=disk.free // 2**20, iops=storage_iops),
        ]
        if gateway_protocols:
            caps.append(Gateway(protocols=gateway_protocols))
        if witness_stake is not None:
            caps.append(Witness(stake=witness_stake))
        return tuple(caps)

    def availability(self) -> Availability:
        compute = 1.0 - psutil.cpu_percent(interval=None) / 100.0
        disk = psutil.disk_usage(str(self.data_dir))
        storage = disk.free / disk.total if disk.total else 0.0
        counters = psutil.net_io_counters()
        total = counters.bytes_sent + counters.bytes_recv
        now = time.monotonic()
        bandwidth = 1.0
        if self._net is not None:
            then, before = self._net
            rate = max(0, total - before) / max(1e-3, now - then)
            bandwidth = 1.0 - rate / self.capacity_bytes_per_s
        self._net = (now, total)
        return Availability(_clamp(compute), _clamp(storage), _clamp(bandwidth))
