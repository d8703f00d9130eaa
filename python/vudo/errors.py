"""Error types that say whose fault a failure is and how to fix it."""

from __future__ import annotations


class VudoError(Exception):
    """Base class of every error VUDO raises on purpose."""

    #: "local" when the operator/caller must act, "remote" when a peer misbehaved.
    fault = "local"


class ConfigError(VudoError):
    """A setting (flag, VUDO_* variable or TOML key) is invalid."""


class IdentityError(VudoError):
    """The node's key or token is missing, malformed or insecure."""


class InsecureKeyError(IdentityError):
    """The key file can be read by other users."""


class BootstrapError(VudoError):
    """The node could not join the network."""


class RemoteValueError(VudoError):
    """A value received from a peer failed validation (the peer's fault)."""

    fault = "remote"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class LinkRequestError(VudoError):
    """A request over a link got no answer (timeout, link closed, or the peer refused it)."""
