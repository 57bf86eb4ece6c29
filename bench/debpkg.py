"""Fetch Debian packages with apt and unpack them into a folder, without installing anything."""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

LOG = logging.getLogger("funnel.bench")

# ldd prints "libfoo.so.1 => not found" for each library the loader cannot resolve.
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


class FetchError(RuntimeError):
    """A Debian package could not be fetched or unpacked; run `apt-get update` and try again."""


def fetch_and_unpack(packages: Iterable[str], debs: Path, root: Path) -> None:
    """Download `packages` (no dependencies) into `debs` and unpack each into `root` with `dpkg -x`."""
    names = sorted(set(packages))
    debs.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    _download(names, debs)
    for name in names:
        # apt-get download names files <package>_<version>_<arch>.deb; one version per package here.
        found = sorted(debs.glob(f"{name}_*.deb"))
        if not found:
            raise FetchError(f"apt-get download {name} left no {name}_*.deb in {debs}")
        for deb in found:
            _run(["dpkg", "-x", str(deb), str(root)])
            LOG.info("bench.unpack", extra={"fields": {"deb": deb.name, "into": str(root)}})


def library_path(root: Path) -> str:
    """The LD_LIBRARY_PATH that finds libraries unpacked under `root` (postfix's own and multiarch)."""
    candidates = [root / "usr/lib/postfix"]
    # Debian puts shared libraries in <prefix>/lib/<triplet>, e.g. usr/lib/x86_64-linux-gnu.
    for prefix in ("usr/lib", "lib"):
        candidates.extend(sorted((root / prefix).glob("*-linux-gnu*")))
    return os.pathsep.join(str(path) for path in candidates if path.is_dir())


def missing_libraries(binary: Path, lib_path: str) -> list[str]:
    """Shared libraries `binary` needs that the loader cannot find with `lib_path` prepended."""
    env = {**os.environ, "LD_LIBRARY_PATH": _joined(lib_path, os.environ.get("LD_LIBRARY_PATH", ""))}
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env, check=False)
    return sorted(set(_NOT_FOUND.findall(result.stdout)))


def _download(names: list[str], debs: Path) -> None:
    command = ["apt-get", "download", *names]
    if os.geteuid() == 0:
        # As root apt drops to the `_apt` user to download, which cannot write into our folder;
        # it then warns and downloads unsandboxed anyway. Say so up front to keep the output clean.
        command[1:1] = ["-o", "APT::Sandbox::User=root"]
    try:
        _run(command, cwd=debs)
    except FetchError:
        # A fresh machine has empty package lists: "E: Unable to locate package postfix".
        if os.geteuid() != 0:
            raise
        LOG.info("bench.apt_update", extra={"fields": {"why": f"apt-get download {' '.join(names)} failed"}})
        _run(["apt-get", "update"])
        _run(command, cwd=debs)


def _run(command: list[str], cwd: Path | None = None) -> None:
    try:
        subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True)
    except FileNotFoundError as exc:
        raise FetchError(f"{command[0]} is not on PATH; this needs a Debian or Ubuntu machine") from exc
    except subprocess.CalledProcessError as exc:
        raise FetchError(f"{' '.join(command)} failed ({exc.returncode}): {exc.stderr.strip()}") from exc


def _joined(*paths: str) -> str:
    return os.pathsep.join(path for path in paths if path)
