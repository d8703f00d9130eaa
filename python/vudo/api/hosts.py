"""Which ``Host`` and ``Origin`` values the HTTP API answers (DNS rebinding).

A web page on ``evil.example`` can point its own DNS name at 127.0.0.1 and
then read a node's API from the victim's browser: the request reaches the
node with ``Host: evil.example``. So, as geth's ``--http.vhosts`` does, the
API serves only requests whose Host names the address it is bound to, a
loopback name, or a configured name (``api_vhosts``; ``*`` turns the check
off). A mutating request that carries an ``Origin`` must come from such a
host too, so a page cannot make a browser post to the node. Everything here
is a pure function of its inputs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_name(host_header: str) -> str | None:
    """``Host`` header -> lower-case name without port (IPv6 unbracketed); None when unparsable."""
    text = host_header.strip().lower()
    if not text:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        name, rest = text[1:end], text[end + 1:]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return name
    name, sep, port = text.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name
    if ":" in text:  # a bare IPv6 address without brackets is not a valid Host
        return None
    return text


@dataclass(frozen=True, slots=True)
class HostPolicy:
    allowed: frozenset[str]
    any_host: bool = False

    @classmethod
    def for_bind(cls, bind_host: str, vhosts: tuple[str, ...] = ()) -> HostPolicy:
        names = set(LOOPBACK_NAMES)
        try:
            ip = ipaddress.ip_address(bind_host)
        except ValueError:
            names.add(bind_host.lower())
        else:
            if not ip.is_unspecified:
                names.add(str(ip))
        any_host = "*" in vhosts
        names.update(v.strip().lower().strip("[]") for v in vhosts if v.strip() and v != "*")
        return cls(frozenset(names), any_host)

    def host_allowed(self, host_header: str | None) -> bool:
        if self.any_host:
            return True
        name = host_name(host_header or "")
        return name is not None and name in self.allowed

    def origin_allowed(self, method: str, origin: str | None) -> bool:
        """Mutating calls from a browser must come from an allowed origin; non-browser calls send none."""
        if method.upper() in SAFE_METHODS or origin is None:
            return True
        if self.any_host:
            return True
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False  # includes the opaque origin "null"
        return parts.hostname.lower() in self.allowed
