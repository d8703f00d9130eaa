"""VUDO: a peer-to-peer node runtime modelled on fungal mycelium.

Layers (see DESIGN.md): engines live in the private extension ``vudo._core``;
policies (``hyphal``, ``gradient``, ``substrate``, ``physarum``) are plain
state machines; ``node`` composes them under asyncio; ``api`` and ``cli`` are
the thin interfaces.
"""

__version__ = "0.2.0"
