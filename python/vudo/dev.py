"""`vudo dev`: a local network of real `vudo node` processes on loopback.

Each node gets its own data dir under the cluster directory, its own gossip
(UDP) and API (TCP) ports; node 0 is the seed of the others. As soon as
every node answers ``/readyz`` the cluster description is written to
``DIR/cluster.json``; its ``argv`` restarts a node with the same identity,
data and ports. Ctrl-C/SIGTERM stops every node gracefully.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

import httpx

from vudo.credits.transaction import UNITS_PER_CREDIT
from vudo.errors import BootstrapError, ConfigError
from vudo.gossip_keys import decode_key, generate_key, write_key_file
from vudo.identity import KEY_FILE, init_data_dir, load_identity
from vudo.portcheck import free_ports
from vudo.spirits.builtin import PHYSARUM_PACKAGE, install_into

CLUSTER_FILE = "cluster.json"
#: What `vudo dev` gives every node at genesis: 1 000 credits.
DEV_GENESIS_UNITS = 1000 * UNITS_PER_CREDIT
KEY_FILE_NAME = "gossip.key"


@dataclass(frozen=True)
class DevNode:
    node_id: str
    api: str
    gossip: str
    link: str
    pid: int
    data_dir: str
    witness: bool
    argv: list[str]


def _free_ports(count: int, kind: int) -> list[int]:
    """``count`` distinct free loopback ports, outside the range a running node's own sockets draw from."""
    return free_ports(count, kind)


def _both_free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def allocate_ports(count: int, base_port: int) -> list[tuple[int, int, int]]:
    """(gossip, api, link) ports per node; consecutive from ``base_port`` when given."""
    if base_port:
        triples = [(base_port + 3 * i, base_port + 3 * i + 1, base_port + 3 * i + 2) for i in range(count)]
        for ports in triples:
            if not all(_both_free(p) for p in ports):
                raise ConfigError(f"one of ports {ports} is in use; choose another --base-port")
        return triples
    gossip = _free_ports(count, socket.SOCK_DGRAM)
    tcp = _free_ports(2 * count, socket.SOCK_STREAM)  # API and link ports from one call: they never collide
    return [(gossip[i], tcp[i], tcp[count + i]) for i in range(count)]


def node_argv(data_dir: Path, gossip_port: int, api_port: int, seed: str | None, gossip_interval_ms: int, witness: bool,
              key_file: Path | None = None, link_port: int | None = None, ledger_witnesses: Sequence[str] = ()) -> list[str]:
    argv = [
        sys.executable, "-m", "vudo", "node",
        "--data-dir", str(data_dir),
        "--gossip-port", str(gossip_port),
        "--api-port", str(api_port),
        *(["--link-port", str(link_port)] if link_port is not None else []),
        "--gossip-interval-ms", str(gossip_interval_ms),
        "--cluster-id", "vudo-dev",
    ]
    if seed:
        argv += ["--seed", seed]
    if witness:
        argv += ["--witness", "--witness-stake", "1000"]
    else:
        for node_id in ledger_witnesses:  # the other nodes trust exactly the dev cluster's witnesses
            argv += ["--ledger-witness", node_id]
    argv += ["--gossip-key-file", str(key_file)] if key_file is not None else ["--open-gossip"]
    return argv


def cluster_key_file(directory: Path) -> Path:
    """DIR/gossip.key (0600): the dev cluster's gossip key, created once and reused on restarts."""
    path = directory / KEY_FILE_NAME
    if not path.exists():
        write_key_file(path, [decode_key(generate_key(), source="new key")])
    return path


def wait_ready(api: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BootstrapError(f"node at {api} exited with code {proc.returncode} before becoming ready (see its log)")
        try:
            if httpx.get(api + "/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise BootstrapError(f"node at {api} did not become ready in time (see its log)")


def _post(api: str, token: str, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(api + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)


def found_ledger(nodes: list[DevNode], deadline: float) -> None:
    """Found the witness cluster (every witness initialised with the same list) and give every node 1 000 credits.

    Idempotent: on a restarted dev cluster the witnesses already agree and the genesis already happened.
    """
    witnesses = [n for n in nodes if n.witness]
    if not witnesses:
        return
    ids = sorted(n.node_id for n in witnesses)
    for n in witnesses:
        token = (Path(n.data_dir) / "api-token").read_text().strip()
        founded = _post(n.api, token, "/v1/credits/witnesses/init", {"witnesses": ids})
        if founded.status_code != 200:
            raise BootstrapError(f"witness {n.node_id} refused to found the ledger: {founded.text}")
    allocations = {n.node_id: DEV_GENESIS_UNITS for n in nodes}
    first = witnesses[0]
    token = (Path(first.data_dir) / "api-token").read_text().strip()
    while True:
        response: httpx.Response | None = None
        try:
            response = _post(first.api, token, "/v1/credits/genesis", {"allocations": allocations})
        except httpx.HTTPError as err:
            detail = str(err)
        if response is not None:
            body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
            if response.status_code == 200 or body.get("code") in ("id_conflict", "minting_closed"):
                return  # founded now, or on an earlier run of this dev cluster
            if response.status_code != 503:
                raise BootstrapError(f"the genesis was refused: {response.text}")
            detail = response.text
        if time.monotonic() > deadline:
            raise BootstrapError(f"the witnesses elected no ledger leader in time ({detail}); see their logs")
        time.sleep(0.5)


def banner(nodes: list[DevNode], directory: Path, key_file: Path | None = None) -> str:
    lines = [f"VUDO dev network: {len(nodes)} node(s) in {directory}", ""]
    for i, n in enumerate(nodes):
        role = " witness" if n.witness else ""
        lines.append(f"  [{i}] {n.node_id}{role}")
        lines.append(f"      gossip udp://{n.gossip}  link {n.link}  api {n.api}  pid {n.pid}")
    lines += ["", f"  dashboard:  {nodes[0].api}/", f"  physarum:   {nodes[0].api}/physarum",
              f"  spirit:     vudo spirit summon physarum --data-dir {nodes[0].data_dir}  (page: {nodes[0].api}/spirits/physarum/)",
              f"  cluster:    {directory / CLUSTER_FILE}",
              f"  credits:    {sum(n.witness for n in nodes)} witness(es); every node got 1000 credits (vudo credits status --api {nodes[0].api})",
              f"  gossip key: {key_file}" if key_file else "  gossip:     OPEN (no cluster key)", "",
              "Press Ctrl-C to stop every node."]
    return "\n".join(lines)


def run_dev(*, nodes: int, directory: Path | None, base_port: int, gossip_interval_ms: int, witnesses: int | None, as_json: bool,
            open_gossip: bool = False) -> int:
    if witnesses is None:
        witnesses = min(3, nodes)
    with ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vudo-dev-")))
        directory.mkdir(parents=True, exist_ok=True)
        ports = allocate_ports(nodes, base_port)
        key_file = None if open_gossip else cluster_key_file(directory)
        procs: list[subprocess.Popen[bytes]] = []
        stopping = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        described: list[DevNode] = []
        try:
            seed = f"127.0.0.1:{ports[0][0]}"
            for i, (gport, aport, lport) in enumerate(ports):
                data_dir = directory / f"node-{i}"
                if not (data_dir / KEY_FILE).exists():
                    init_data_dir(data_dir)
                if PHYSARUM_PACKAGE.is_file():
                    print(f"node {i}: physarum spirit: {install_into(data_dir)}", file=sys.stderr)
                else:
                    print(f"node {i}: {PHYSARUM_PACKAGE} is not built (scripts/build-spirit.sh); no physarum spirit", file=sys.stderr)
                argv = node_argv(data_dir, gport, aport, None if i == 0 else seed, gossip_interval_ms, i < witnesses, key_file,
                                 link_port=lport, ledger_witnesses=[d.node_id for d in described if d.witness])
                log = open(data_dir / "node.log", "ab")
                stack.callback(log.close)
                procs.append(subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True))
                described.append(DevNode(
                    node_id=load_identity(data_dir).node_id, api=f"http://127.0.0.1:{aport}", gossip=f"127.0.0.1:{gport}",
                    link=f"/ip4/127.0.0.1/tcp/{lport}",
                    pid=procs[-1].pid, data_dir=str(data_dir), witness=i < witnesses, argv=argv,
                ))
                print(f"started node {i} (pid {procs[-1].pid}), waiting for it to join...", file=sys.stderr)
                wait_ready(described[-1].api, procs[-1], time.monotonic() + 90)
                if stopping:
                    return 130
            print(f"founding the credit ledger with {sum(n.witness for n in described)} witness(es)...", file=sys.stderr)
            found_ledger(described, time.monotonic() + 120)
            cluster = {"nodes": [asdict(n) for n in described], "gossip_key_file": str(key_file) if key_file else None}
            tmp = directory / (CLUSTER_FILE + ".tmp")
            tmp.write_text(json.dumps(cluster, indent=2))
            tmp.replace(directory / CLUSTER_FILE)
            print(json.dumps(cluster, indent=2) if as_json else banner(described, directory, key_file), flush=True)
            reported: set[int] = set()
            while not stopping:
                time.sleep(0.2)
                for i, proc in enumerate(procs):
                    if proc.poll() is not None and i not in reported:
                        reported.add(i)
                        print(f"node {i} exited with code {proc.returncode}; restart it with: {' '.join(described[i].argv)}", file=sys.stderr)
            return 0
        finally:
            print("stopping every node...", file=sys.stderr)
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            print("all nodes stopped", file=sys.stderr)
