"""Shared pieces of the browser tests: Debian's Chromium and the web build.

Never downloads a browser: Playwright drives ``/usr/bin/chromium``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "web"
STATIC = REPO / "python" / "vudo" / "web" / "static"
CHROMIUM = "/usr/bin/chromium"
SWIFTSHADER = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Generous: these only bound how long we wait for something that should
# happen within a couple of poll intervals.
UI_TIMEOUT_MS = 15_000


# ------------------------------------------------------------------ build ---


def _newest_mtime(paths: list[Path]) -> float:
    newest = 0.0
    for p in paths:
        if p.is_dir():
            for f in p.rglob("*"):
                if f.is_file():
                    newest = max(newest, f.stat().st_mtime)
        elif p.exists():
            newest = max(newest, p.stat().st_mtime)
    return newest


def _run(cmd: list[str]) -> None:
    env = {**os.environ, "npm_config_update_notifier": "false"}
    proc = subprocess.run(cmd, cwd=WEB, env=env, capture_output=True, text=True, timeout=240)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed in {WEB} (exit {proc.returncode})\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )


def ensure_web_built() -> None:
    """Build the web bundles if they are missing or older than their sources."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH; it is needed to build web/")
    bundle = STATIC / "dashboard.js"
    # Every bundle whose entry point exists (see web/build.mjs) must be fresh.
    bundles = [bundle]
    if (WEB / "src" / "physarum" / "main.ts").exists():
        bundles.append(STATIC / "physarum.js")
    sources = [WEB / "src", WEB / "package.json", WEB / "package-lock.json", WEB / "build.mjs", WEB / "tsconfig.json"]
    newest_source = _newest_mtime(sources)
    if all(b.exists() and b.stat().st_mtime >= newest_source for b in bundles):
        return
    # `npm ci` wipes and reinstalls node_modules; only do it when the
    # installed tree is missing or older than the lockfile.
    installed = WEB / "node_modules" / ".package-lock.json"
    lock = WEB / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        _run([npm, "ci", "--no-audit", "--no-fund"])
    _run([npm, "run", "build"])
    missing = [b for b in bundles if not b.exists()]
    if missing:
        raise RuntimeError(f"npm run build did not produce {missing}")
