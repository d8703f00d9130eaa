"""A small harness that runs real ``python -m vudo node`` processes on loopback.

Plain module (no pytest dependency) so both tests and benchmarks can use it::

    with LocalCluster(tmp_path, size=5) as cluster:
        cluster.start()
        cluster.wait_converged()
        cluster.nodes[2].kill()
        cluster.wait_status(cluster.nodes[2], "dead")

Every process started here is registered in a module-level table and killed
(SIGKILL) by :meth:`LocalCluster.close`, by :func:`kill_all_children` and at
interpreter exit, whatever happened before. Node output goes to
``<data_dir>/node.log``; failed waits raise :class:`AssertionError` with the
last lines of every node's log.

Waits never assert timing: they poll until a condition holds and fail only
after a generous deadline.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from vudo import portcheck

PYTHON = sys.executable
#: Generous default deadline for anything that should happen "soon".
DEADLINE = 60.0
POLL = 0.1

T = TypeVar("T")

_LIVE: dict[int, subprocess.Popen[bytes]] = {}


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for child processes.

    With ``PYTHONDONTWRITEBYTECODE`` set (as in some sandboxes) every child
    recompiles all of FastAPI, pydantic, ... from source: about 2.5 s of CPU
    per process, which dominates start-up of many nodes on 2 cores. Children
    therefore cache bytecode under a prefix outside the source tree instead.
    """
    env = {**os.environ, "NO_COLOR": "1"}
    if env.pop("PYTHONDONTWRITEBYTECODE", None) is not None and "PYTHONPYCACHEPREFIX" not in env:
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), f"vudo-test-pycache-{os.getuid()}")
    env.update(extra or {})
    return env


def kill_all_children() -> None:
    """SIGKILL every process this module started that is still running."""
    for pid, proc in list(_LIVE.items()):
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGCONT)  # a stopped process still dies of SIGKILL, but be tidy
                proc.kill()
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            pass
        _LIVE.pop(pid, None)


atexit.register(kill_all_children)


def spawn(argv: Sequence[str], log_path: Path, *, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a child with stdout+stderr appended to ``log_path``; registered for cleanup."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=child_env(env),
        )
    _LIVE[proc.pid] = proc
    return proc


def forget(proc: subprocess.Popen[bytes]) -> None:
    _LIVE.pop(proc.pid, None)


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def free_ports(count: int, kind: int) -> list[int]:
    """``count`` distinct free loopback ports of socket type ``kind``, outside the ephemeral range.

    Ports from the ephemeral range could be taken before a node binds them by
    the loopback pipes of nodes already running (they bind port 0); see
    ``vudo.portcheck.free_ports``.
    """
    return portcheck.free_ports(count, kind)


def wait_for(
    predicate: Callable[[], T | None],
    *,
    timeout: float = DEADLINE,
    what: str,
    diagnostics: Callable[[], str] | None = None,
    interval: float = POLL,
) -> T:
    """Poll ``predicate`` until it returns a truthy value; return that value.

    Exceptions from ``httpx`` count as "not yet". On timeout raise
    AssertionError naming ``what`` with the diagnostics.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except httpx.HTTPError as err:
            last_error = err
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    detail = f"\nlast error: {last_error!r}" if last_error else ""
    extra = f"\n{diagnostics()}" if diagnostics else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}{extra}")


def run_vudo(*args: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a short-lived ``python -m vudo`` command and capture its output."""
    return subprocess.run(
        [PYTHON, "-m", "vudo", *args], capture_output=True, text=True, timeout=timeout,
        env=child_env(env), stdin=subprocess.DEVNULL,
    )


def init_data_dir(data_dir: Path, *, via_cli: bool = False) -> str:
    """Create the node's identity and API token; returns the node id.

    In-process by default (``vudo init`` costs a 2-3 s interpreter start on
    this machine); ``via_cli`` runs the real command instead.
    """
    if via_cli:
        result = run_vudo("init", "--data-dir", str(data_dir), "--json")
        if result.returncode != 0:
            raise AssertionError(f"vudo init failed ({result.returncode}): {result.stderr}")
        return str(json.loads(result.stdout)["node_id"])
    from vudo.identity import init_data_dir as _init

    return _init(data_dir).node_id


def node_id_of(data_dir: Path) -> str:
    from vudo.identity import load_identity

    return load_identity(data_dir).node_id


@dataclass
class NodeProc:
    """One node: its data dir, ports, argv and (when running) its process."""

    index: int
    data_dir: Path
    gossip_port: int
    api_port: int
    argv: list[str]
    node_id: str = ""
    link_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=5.0), repr=False)

    # -- addresses ----------------------------------------------------------

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def gossip(self) -> str:
        return f"127.0.0.1:{self.gossip_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "node.log"

    @property
    def token(self) -> str:
        return (self.data_dir / "api-token").read_text().strip()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __str__(self) -> str:
        return f"node[{self.index}] {self.node_id[-8:]} api={self.api} gossip={self.gossip}"

    # -- process control ------------------------------------------------------

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self} is already running")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== harness: start #{self.starts}: {' '.join(self.argv)}\n".encode())
        self.proc = spawn(self.argv, self.log_path)

    restart = start  # same argv, same data dir, same ports

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None, f"{self} was never started"
        self.proc.send_signal(sig)

    def kill(self) -> int:
        """SIGKILL and reap; returns the exit code (-9)."""
        self.signal(signal.SIGKILL)
        return self.wait_exit(timeout=30)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self} did not exit within {timeout:.0f}s\n{self.describe_log()}") from None
        forget(self.proc)
        return code

    def describe_log(self, lines: int = 30) -> str:
        state = "running" if self.running else f"exited {self.proc.returncode if self.proc else 'never started'}"
        return f"--- {self} ({state}), last {lines} log lines of {self.log_path}:\n{tail(self.log_path, lines)}"

    # -- API --------------------------------------------------------------------

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._client.get(self.api + path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._client.post(self.api + path, **kwargs)

    def ready(self) -> bool:
        try:
            return self.get("/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def members(self) -> dict[str, dict[str, Any]]:
        """node_id -> member, as this node's /v1/members reports it."""
        response = self.get("/v1/members")
        response.raise_for_status()
        return {m["node_id"]: m for m in response.json()["members"]}

    def metrics(self) -> str:
        response = self.get("/metrics")
        response.raise_for_status()
        return response.text

    def rejected_count(self, key: str, reason: str) -> float:
        return metric_value(self.metrics(), "vudo_gossip_values_rejected_total", {"key": key, "reason": reason})

    def close(self) -> None:
        self._client.close()


def metric_value(text: str, name: str, labels: dict[str, str]) -> float:
    """Value of one Prometheus sample (0.0 when the labelled series is absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if not labels and line.startswith(name + " "):
            return float(line.rpartition(" ")[2])
        if not line.startswith(name + "{"):
            continue
        series, _, value = line.rpartition(" ")
        inner = series[len(name) + 1:-1]
        got = ",".join(sorted(part for part in inner.split(",") if part))
        if got == want:
            return float(value)
    return 0.0


class LocalCluster:
    """``size`` nodes under ``root``; node 0 (and node 1 when ``seeds=2``) seed the others."""

    def __init__(
        self,
        root: Path,
        size: int,
        *,
        gossip_interval_ms: int = 100,
        cluster_id: str | None = None,
        seeds: int = 1,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.root = Path(root)
        self.gossip_interval_ms = gossip_interval_ms
        self.cluster_id = cluster_id or f"test-{os.getpid()}-{id(self):x}"
        gossip_ports = free_ports(size, socket.SOCK_DGRAM)
        tcp_ports = free_ports(2 * size, socket.SOCK_STREAM)  # one call, so API and link ports never collide
        api_ports, link_ports = tcp_ports[:size], tcp_ports[size:]
        seed_addrs = [f"127.0.0.1:{p}" for p in gossip_ports[:max(1, seeds)]]
        self.nodes: list[NodeProc] = []
        for i in range(size):
            data_dir = self.root / f"node-{i}"
            argv = [
                PYTHON, "-m", "vudo", "node",
                "--data-dir", str(data_dir),
                "--gossip-port", str(gossip_ports[i]),
                "--api-port", str(api_ports[i]),
                "--link-port", str(link_ports[i]),
                "--gossip-interval-ms", str(gossip_interval_ms),
                "--cluster-id", self.cluster_id,
                *extra_args,
            ]
            for seed in seed_addrs:
                if seed != f"127.0.0.1:{gossip_ports[i]}":
                    argv += ["--seed", seed]
            self.nodes.append(NodeProc(i, data_dir, gossip_ports[i], api_ports[i], argv, link_port=link_ports[i]))
        self._inited = False

    # -- context manager ----------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """SIGKILL every node still running. Idempotent; safe on failure paths."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                try:
                    node.proc.send_signal(signal.SIGCONT)
                    node.proc.kill()
                except ProcessLookupError:
                    pass
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:  # pragma: no cover
                    pass
                forget(node.proc)
            node.close()

    # -- lifecycle ------------------------------------------------------------------

    def init(self) -> None:
        if self._inited:
            return
        for node in self.nodes:
            if not (node.data_dir / "node.key").exists():
                node.node_id = init_data_dir(node.data_dir)
            else:
                node.node_id = node_id_of(node.data_dir)
        self._inited = True

    def start(self, *, wait: bool = True) -> None:
        """Init data dirs, start every node (seeds first), optionally wait for /readyz."""
        self.init()
        for node in self.nodes:
            node.start()
        if wait:
            self.wait_ready()

    def wait_ready(self, nodes: Iterable[NodeProc] | None = None, timeout: float = 90.0) -> None:
        targets = list(self.nodes if nodes is None else nodes)

        def check() -> bool:
            for node in targets:
                if not node.running:
                    raise AssertionError(f"{node} exited before becoming ready\n{self.diagnostics()}")
            return all(node.ready() for node in targets)

        wait_for(check, timeout=timeout, what="every node to answer /readyz 200", diagnostics=self.diagnostics)

    # -- observations ------------------------------------------------------------------

    def views(self, observers: Iterable[NodeProc] | None = None) -> dict[int, dict[str, dict[str, Any]]]:
        """observer index -> that node's membership table."""
        return {n.index: n.members() for n in (self.nodes if observers is None else observers)}

    def running_nodes(self, exclude: Iterable[NodeProc] = ()) -> list[NodeProc]:
        skip = {n.index for n in exclude}
        return [n for n in self.nodes if n.running and n.index not in skip]

    def wait_views(
        self,
        predicate: Callable[[NodeProc, dict[str, dict[str, Any]]], bool],
        *,
        what: str,
        observers: Iterable[NodeProc] | None = None,
        timeout: float = DEADLINE,
    ) -> dict[int, dict[str, dict[str, Any]]]:
        """Wait until ``predicate(observer, its members)`` holds for every observer."""
        targets = list(self.running_nodes() if observers is None else observers)
        last: dict[int, dict[str, dict[str, Any]]] = {}

        def check() -> dict[int, dict[str, dict[str, Any]]] | None:
            for node in targets:
                if not node.running:
                    raise AssertionError(f"{node} died while waiting for {what}\n{self.diagnostics()}")
                last[node.index] = node.members()
            return dict(last) if all(predicate(n, last[n.index]) for n in targets) else None

        def diag() -> str:
            return f"last views:\n{self.format_views(last)}\n{self.diagnostics()}"

        return wait_for(check, timeout=timeout, what=what, diagnostics=diag)

    def wait_converged(self, observers: Iterable[NodeProc] | None = None, timeout: float = DEADLINE) -> dict[int, dict[str, dict[str, Any]]]:
        """Every observer lists every node of the cluster as alive+verified (itself included)."""
        ids = {n.node_id for n in self.nodes}

        def full(observer: NodeProc, members: dict[str, dict[str, Any]]) -> bool:
            return ids <= set(members) and all(
                members[i]["status"] == "alive" and members[i]["verified"] for i in ids
            ) and members[observer.node_id]["is_self"]

        return self.wait_views(full, what=f"all {len(ids)} nodes alive+verified everywhere", observers=observers, timeout=timeout)

    def wait_status(
        self, subject: NodeProc, status: str, *, observers: Iterable[NodeProc] | None = None, timeout: float = DEADLINE,
        generation_above: int | None = None, verified: bool | None = None,
    ) -> dict[int, dict[str, dict[str, Any]]]:
        """Every observer (default: every other running node) sees ``subject`` with ``status``."""
        targets = list(self.running_nodes(exclude=[subject]) if observers is None else observers)

        def ok(_: NodeProc, members: dict[str, dict[str, Any]]) -> bool:
            m = members.get(subject.node_id)
            if m is None or m["status"] != status:
                return False
            if generation_above is not None and m["generation"] <= generation_above:
                return False
            return verified is None or m["verified"] is verified

        return self.wait_views(ok, what=f"{subject} to be {status!r} in every view", observers=targets, timeout=timeout)

    # -- reporting -----------------------------------------------------------------------

    def format_views(self, views: dict[int, dict[str, dict[str, Any]]]) -> str:
        names = {n.node_id: f"n{n.index}" for n in self.nodes}
        lines = []
        for idx, members in sorted(views.items()):
            cells = [
                f"{names.get(nid, nid[-6:])}:{m['status']}{'+v' if m['verified'] else '-v'}@{m['generation']}"
                + (f"!{','.join(m['rejected'])}" if m.get("rejected") else "")
                for nid, m in sorted(members.items(), key=lambda kv: names.get(kv[0], kv[0]))
            ]
            lines.append(f"  n{idx} sees: {' '.join(cells)}")
        return "\n".join(lines)

    def diagnostics(self, lines: int = 25) -> str:
        return "\n".join(node.describe_log(lines) for node in self.nodes)
