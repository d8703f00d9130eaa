"""Model parameters of the Physarum kernel: every default lives here, once.

``P.json`` decodes into :class:`PhysarumParams`; :meth:`PhysarumParams.to_array`
maps it onto the kernel's flat ``f64`` parameter array (slot order = ABI.md and
``crates/vudo-physarum/src/params.rs``).

==========================  =========  ================================================
key                         default    meaning
==========================  =========  ================================================
model                       "power"    f(|Q|) = |Q|^mu ("power", Tero 2007) or
                                       |Q|^gamma / (1 + |Q|^gamma) ("sigmoid", Tero 2010)
mu                          1.0        power-law exponent (1 = shortest path)
gamma                       1.8        sigmoid exponent
i0                          1.0        total flux injected by the source(s)
decay                       1.0        r in dD/dt = growth_rate*f(|Q|) - r*D
dt                          0.5        time step (dt*decay <= 1)
scheme                      "auto"     "pair" (food[0] -> food[1]), "random_pair",
                                       "one_to_all" (random source, all others sinks),
                                       "auto" = pair with two food sources, else one_to_all
prune_threshold             1e-3       tubes with radius below this are removed
growth_rate                 1.0        scale of f(|Q|)
min_thickness               0.0        radius floor of surviving tubes
max_thickness               100.0      radius cap
exploration_probability     0.0        chance per frontier tip per step to grow
step_size                   1.0        length of a new pseudopod tube
initial_thickness           0.5        radius of a new pseudopod tube
cg_tol                      1e-12      CG stop: max node residual <= cg_tol*i0
cg_max_iter                 20000      CG iteration cap per step
sync_strength               0.5        Kuramoto coupling K of oscillation phases
osc_frequency               1.0        natural angular frequency of the oscillation
nutrient_decay              0.05       nutrient loss rate of non-food cells
max_cells                   100000     exploration stops adding cells at this count
initial_conductivity        1.0        D of every input tube at t = 0
cg_precond                  "cholesky" pressure solver: "cholesky" (sparse direct LDLᵀ with a
                                       nested-dissection ordering reused while the pattern
                                       holds; fastest), or CG with "jacobi", "ic0" (zero-fill
                                       incomplete Cholesky) or "mic0" (relaxed modified IC(0));
                                       all solve to cg_tol
==========================  =========  ================================================
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import msgspec

from vudo.codec import decode_json

N_PARAMS = 22

_MODEL_CODE: dict[str, float] = {"power": 0.0, "sigmoid": 1.0}
_SCHEME_CODE: dict[str, float] = {"auto": -1.0, "pair": 0.0, "random_pair": 1.0, "one_to_all": 2.0}
_PRECOND_CODE: dict[str, float] = {"jacobi": 0.0, "ic0": 1.0, "mic0": 2.0, "cholesky": 3.0}

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class PhysarumParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Decoded ``P.json``; every key is optional (defaults in the module docstring)."""

    model: Literal["power", "sigmoid"] = "power"
    mu: Positive = 1.0
    gamma: Positive = 1.8
    i0: Positive = 1.0
    decay: NonNegative = 1.0
    dt: Positive = 0.5
    scheme: Literal["auto", "pair", "random_pair", "one_to_all"] = "auto"
    prune_threshold: NonNegative = 1e-3
    growth_rate: NonNegative = 1.0
    min_thickness: NonNegative = 0.0
    max_thickness: Positive = 100.0
    exploration_probability: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    step_size: Positive = 1.0
    initial_thickness: Positive = 0.5
    cg_tol: Positive = 1e-12
    cg_max_iter: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 20_000
    sync_strength: NonNegative = 0.5
    osc_frequency: float = 1.0
    nutrient_decay: NonNegative = 0.05
    max_cells: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 100_000
    initial_conductivity: Positive = 1.0
    cg_precond: Literal["jacobi", "ic0", "mic0", "cholesky"] = "cholesky"

    def check(self) -> None:
        """Cross-field checks msgspec cannot express; raises ValueError naming the key."""
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"params.{name}: must be finite, got {value}")
        if self.dt * self.decay > 1.0:
            raise ValueError(f"params.dt: dt*decay must be <= 1 for a stable step, got {self.dt * self.decay}")
        if self.min_thickness > self.max_thickness:
            raise ValueError("params.min_thickness: must be <= max_thickness")

    def to_array(self) -> list[float]:
        """The kernel's parameter array (ABI.md, "Parameter array")."""
        self.check()
        return [
            _MODEL_CODE[self.model],
            self.mu,
            self.gamma,
            self.i0,
            self.decay,
            self.dt,
            _SCHEME_CODE[self.scheme],
            self.prune_threshold,
            self.growth_rate,
            self.min_thickness,
            self.max_thickness,
            self.exploration_probability,
            self.step_size,
            self.initial_thickness,
            self.cg_tol,
            float(self.cg_max_iter),
            self.sync_strength,
            self.osc_frequency,
            self.nutrient_decay,
            float(self.max_cells),
            self.initial_conductivity,
            _PRECOND_CODE[self.cg_precond],
        ]


def decode_params(data: bytes) -> PhysarumParams:
    """Decode ``P.json`` bytes; raises ValueError naming the offending field."""
    params = decode_json(data, PhysarumParams, what="params", max_bytes=64 * 1024)
    params.check()
    return params
