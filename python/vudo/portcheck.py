"""Say which process holds a port, when the OS lets us see it."""

from __future__ import annotations

import socket

import psutil


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
