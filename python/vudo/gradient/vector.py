"""Gene ``gradientVector``: multi-dimensional resource availability."""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

GRADIENT_KEY = "gradient"
DECAY_PER_HOP = 0.9
MAX_HOPS = 255

_Unit = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class Resource(enum.Enum):
    COMPUTE = "compute"
    STORAGE = "storage"
    BANDWIDTH = "bandwidth"
    CREDIT = "credit"


class GradientVector(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    node_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    compute_available: _Unit  # 0 = saturated, 1 = idle
    storage_available: _Unit
    bandwidth_available: _Unit
    credit_balance: Annotated[float, msgspec.Meta(ge=0.0, le=1e6)]  # normalised to network average
    timestamp: Annotated[float, msgspec.Meta(ge=0)]
    hops: Annotated[int, msgspec.Meta(ge=0, le=MAX_HOPS)] = 0

    def decay(self, distance: int) -> GradientVector:
        """Scale every availability by 0.9^distance and add ``distance`` hops."""
        if distance < 0:
            raise ValueError("distance must be >= 0")
        factor = DECAY_PER_HOP**distance
        return msgspec.structs.replace(
            self,
            compute_available=self.compute_available * factor,
            storage_available=self.storage_available * factor,
            bandwidth_available=self.bandwidth_available * factor,
            credit_balance=self.credit_balance * factor,
            hops=min(MAX_HOPS, self.hops + distance),
        )

    def get(self, resource: Resource) -> float:
        match resource:
            case Resource.COMPUTE:
                return self.compute_available
            case Resource.STORAGE:
                return self.storage_available
            case Resource.BANDWIDTH:
                return self.bandwidth_available
            case Resource.CREDIT:
                return self.credit_balance
