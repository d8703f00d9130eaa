"""Drive ``vudo-outsider``: a plain chitchat 0.13 participant with no VUDO code.

It is what a stranger who can send UDP to a gossip port can run. Tests use
it to attack real ``vudo node`` processes::

    with Outsider.start(tmp_path) as out:
        out.join("spy", node_id="x", generation=1, port=p, seeds=[...], cluster_id=...)
        out.dump("spy")   # every member and key-value the participant sees

The binary is built by ``scripts/setup.sh`` (``cargo build --release -p
vudo-outsider``); :func:`outsider_binary` builds it if it is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BINARY = ROOT / "target" / "release" / "vudo-outsider"


def outsider_binary() -> Path:
    if not BINARY.exists():
        env = {**os.environ, "PATH": f"{ROOT / 'target' / 'toolchain-bin'}:{os.environ.get('PATH', '')}"}
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "vudo-outsider"], cwd=ROOT, env=env, check=True)
    return BINARY


class Outsider:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log

    @classmethod
    def start(cls, directory: Path) -> Outsider:
        log = directory / "outsider.log"
        binary = outsider_binary()
        directory.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as err:
            proc = subprocess.Popen([str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        return cls(proc, log)

    def __enter__(self) -> Outsider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"vudo-outsider exited ({self.proc.poll()}); log:\n{self.log.read_text()[-2000:]}")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise AssertionError(f"vudo-outsider refused {command['op']}: {answer.get('error')}")
        return answer

    def join(self, name: str, *, node_id: str, generation: int, port: int, seeds: list[str], cluster_id: str,
             kv: dict[str, str] | None = None, advertise_port: int | None = None, gossip_interval_ms: int = 100) -> None:
        self.call(op="join", name=name, node_id=node_id, generation=generation, listen=f"127.0.0.1:{port}",
                  advertise=f"127.0.0.1:{advertise_port or port}", seeds=seeds, cluster_id=cluster_id,
                  gossip_interval_ms=gossip_interval_ms, kv=kv or {})

    def set(self, name: str, key: str, value: str) -> None:
        self.call(op="set", name=name, key=key, value=value)

    def inject(self, name: str, *, count: int, prefix: str, kv: dict[str, str], first_port: int = 20000) -> int:
        return int(self.call(op="inject", name=name, count=count, prefix=prefix, first_port=first_port, kv=kv)["members"])

    def fill(self, name: str, *, count: int, prefix: str, value: str, noise: int = 0) -> int:
        """Set ``count`` keys on participant ``name``: ``value`` then ``noise`` pseudo-random hex digits each."""
        return int(self.call(op="fill", name=name, count=count, prefix=prefix, value=value, noise=noise)["keys"])

    def dump(self, name: str) -> list[dict[str, Any]]:
        members: list[dict[str, Any]] = self.call(op="dump", name=name)["members"]
        return members

    def stop(self, name: str) -> None:
        self.call(op="stop", name=name)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call(op="quit")
                self.proc.wait(timeout=10)
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

