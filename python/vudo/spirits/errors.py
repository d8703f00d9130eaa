"""What can go wrong with a spirit, and whose fault it is."""

from __future__ import annotations

from vudo.errors import VudoError


class SpiritError(VudoError):
    """A spirit failed: the message names the spirit, what happened and what to do.

    ``reason`` is a stable short string (used as a metric label and in the API).
    """

    def __init__(self, reason: str, message: str, *, fault: str = "local") -> None:
        super().__init__(message)
        self.reason = reason
        self.fault = fault


class PackageError(SpiritError):
    """A ``.spirit`` package (or its manifest) is malformed, tampered with or unsafe.

    The author of the package is at fault, not the operator installing it.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message, fault="remote")


class PermissionRefused(SpiritError):
    """A spirit asks for more than the operator granted in ``spirits.allow``."""

    def __init__(self, name: str, missing: tuple[str, ...]) -> None:
        super().__init__(
            "not_granted",
            f"spirit {name!r} asks for {', '.join(missing)}, not granted on this node; "
            f"grant it under [spirits.allow.{name}] in vudo.toml if you trust the author",
        )
        self.missing = missing


class SpiritTrap(SpiritError):
    """The module trapped (or broke the ABI) during a call: the spirit's fault."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message, fault="remote")
