"""Spirits that come with VUDO: ``physarum.spirit``, built by ``scripts/build-spirit.sh``.

:func:`install_into` stores a package in a node's data dir before the node
starts (where the spirits service finds installed packages) and grants the
permissions it asks for in the data dir's ``vudo.toml`` unless the operator
already wrote a grant for it. ``vudo dev`` does this for every node.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path

from vudo.errors import VudoError
from vudo.spirits import package as pkg
from vudo.spirits.errors import PackageError

PHYSARUM_PACKAGE = Path(str(resources.files("vudo") / "physarum" / "physarum.spirit"))
#: Where the spirits service keeps an installed package (see vudo.services.spirits).
STORED_AS = "spirits/{name}/package.spirit"


def _grant_table(package: pkg.Package) -> str:
    p = package.manifest.permissions
    return (f"\n[spirits.allow.{package.name}]\nnetwork = \"{p.network}\"\ncompute = \"{p.compute}\"\n"
            f"display = \"{p.display}\"\nwasi = {'true' if p.wasi else 'false'}\n")


def install_into(data_dir: Path, source: Path = PHYSARUM_PACKAGE) -> str:
    """Install ``source`` into a stopped node's ``data_dir`` and grant it; returns what was done.

    An installed package of the same name is replaced only by a higher rev of
    the same author (as ``POST /v1/spirits`` would); otherwise it is kept.
    """
    try:
        data = source.read_bytes()
    except OSError as err:
        raise VudoError(f"cannot read {source}: {err.strerror} (build it with scripts/build-spirit.sh)") from None
    package = pkg.read_package(data)
    target = data_dir / STORED_AS.format(name=package.name)
    done = f"{package.name}@{package.manifest.version} already installed"
    try:
        current = pkg.read_package(target.read_bytes()) if target.exists() else None
    except PackageError:
        current = None  # a stored package that no longer verifies is replaced
    try:
        if current is None or current.sha256 != package.sha256:
            pkg.check_upgrade(current.manifest if current else None, package.manifest)
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
            done = f"installed {package.name}@{package.manifest.version} rev {package.manifest.rev}"
    except PackageError as err:
        done = f"kept the installed {package.name} ({err.reason})"
    config = data_dir / "vudo.toml"
    text = config.read_text() if config.exists() else ""
    allowed = tomllib.loads(text).get("spirits", {}).get("allow", {}) if text else {}
    if package.name not in allowed:
        config.write_text(text + _grant_table(package))
        done += f", granted {package.manifest.permissions.network}/{package.manifest.permissions.compute}/{package.manifest.permissions.display}"
    return done
