"""Say which process holds a port, when the OS lets us see it; pick free ports that stay free."""

from __future__ import annotations

import random
import socket
from contextlib import ExitStack
from pathlib import Path

import psutil

from vudo.config import LINK_PORT_OFFSET


def port_owner(port: int, *, udp: bool) -> str | None:
    kind = "udp" if udp else "tcp"
    try:
        for conn in psutil.net_connections(kind=kind):
            if conn.laddr and conn.laddr.port == port and (udp or conn.status == psutil.CONN_LISTEN):
                if conn.pid is None:
                    return None
                try:
                    proc = psutil.Process(conn.pid)
                    return f"pid {conn.pid} ({' '.join(proc.cmdline()[:4]) or proc.name()})"
                except psutil.Error:
                    return f"pid {conn.pid}"
    except psutil.Error:
        return None
    return None


def explain_in_use(host: str, port: int, *, udp: bool, what: str, flag: str) -> str:
    owner = port_owner(port, udp=udp)
    held = f" by {owner}" if owner else ""
    return f"{what} address {host}:{port} is already in use{held}; stop that process or choose another {flag}"


def tcp_port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for sockets bound to port 0 (Linux's default when it cannot be read)."""
    try:
        low, high = (int(v) for v in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def free_ports(count: int, kind: int, *, host: str = "127.0.0.1", rng: random.Random | None = None) -> list[int]:
    """``count`` distinct ports free on ``host`` for socket type ``kind``, outside the ephemeral range.

    A port the kernel hands out for port 0 could be taken, between this pick and the node's own bind,
    by any socket bound to port 0 — a running node's loopback gossip pipes, an outgoing connection —
    so the picks come from below (or above) that range, where only explicit binds land. The sockets
    are held together while picking, so no port repeats. Picks stay ``LINK_PORT_OFFSET`` below 65536,
    so a link port derived from a picked gossip port is a valid port too."""
    rng = rng or random.Random()
    low, high = ephemeral_range()
    pool = [p for p in range(1024, 65536 - LINK_PORT_OFFSET) if not low <= p <= high]
    with ExitStack() as stack:
        picked: list[int] = []
        for port in rng.sample(pool, len(pool)):
            sock = stack.enter_context(socket.socket(socket.AF_INET, kind))
            try:
                sock.bind((host, port))
            except OSError:
                continue
            picked.append(port)
            if len(picked) == count:
                return picked
    raise OSError(f"fewer than {count} free ports outside the ephemeral range {low}-{high}")
