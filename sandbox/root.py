"""Build the Asterisk 22 root (a Debian sid tree made by mmdebstrap) that sandboxes run from.

The root is built in a temporary directory next to its final place and renamed into place only
when complete, so a half-built root is never used; a marker file inside it records what it was
built with, and a root whose marker matches is reused. A file lock serialises builders.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

#: Debian packages installed into the root (the asterisk package pulls in its modules, config
#: samples and the English prompts).
PACKAGES: tuple[str, ...] = ("asterisk",)
SUITE = "sid"
MARKER = ".hotline-root.json"
#: where each instance privately bind-mounts its run directory (see sandbox/instance.py)
CHROOT_RUN_DIR = "/run/hotline"
ASTERISK_BIN = "/usr/sbin/asterisk"
BUILD_TIMEOUT = 1800.0


class SandboxError(RuntimeError):
    """The sandbox cannot be built, started or stopped; the message says why."""


def unavailable_reason() -> str | None:
    """Why this host cannot run the sandbox at all, or None."""
    if os.geteuid() != 0:
        return "the Asterisk sandbox needs root (chroot, mount)"
    for tool in ("chroot", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def read_marker(root: Path) -> dict[str, object] | None:
    try:
        data = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(root: Path, packages: Sequence[str] = PACKAGES) -> bool:
    marker = read_marker(root)
    return (
        marker is not None
        and marker.get("packages") == list(packages)
        and (root / ASTERISK_BIN.lstrip("/")).exists()
    )


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (never delete a tree with something mounted in it)."""
    prefix = str(path.resolve())
    found = []
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            point = line.split()[1].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def _remove_tree(path: Path) -> None:
    if not path.exists():
        return
    if mounted := _mounts_under(path):
        raise SandboxError(f"refusing to delete {path}: mounted inside it: {', '.join(mounted)}")
    shutil.rmtree(path)


def build_root(
    root: Path, *, packages: Sequence[str] = PACKAGES, force: bool = False
) -> Path:
    """Make sure a complete root exists at ``root``; build it (a minute or so) if not."""
    root = root.expanduser().absolute()
    if not force and is_complete(root, packages):
        return root
    if reason := unavailable_reason():
        raise SandboxError(reason)
    if shutil.which("mmdebstrap") is None:
        raise SandboxError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    with _locked(root):
        if not force and is_complete(root, packages):  # another process built it meanwhile
            return root
        # Leftovers of builders that died: we hold the lock, so nobody is using them.
        for stale in root.parent.glob(f".{root.name}.building-*"):
            _remove_tree(stale)
        staging = root.parent / f".{root.name}.building-{os.getpid()}"
        cmd = [
            "mmdebstrap", "--variant=apt",
            # a snapshot's Release file may be older than its Valid-Until
            "--aptopt=Acquire::Check-Valid-Until \"false\"",
            f"--include={','.join(packages)}",
            SUITE, str(staging),
        ]
        try:
            result = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=BUILD_TIMEOUT, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            _remove_tree(staging)
            raise SandboxError(f"mmdebstrap took longer than {BUILD_TIMEOUT:.0f} s") from exc
        if result.returncode != 0:
            _remove_tree(staging)
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise SandboxError(f"mmdebstrap failed ({result.returncode}):\n{tail}")
        (staging / CHROOT_RUN_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
        version = subprocess.run(
            ["chroot", str(staging), ASTERISK_BIN, "-V"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()
        marker = {"packages": list(packages), "suite": SUITE, "asterisk": version,
                  "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (staging / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        old = None
        if root.exists() or root.is_symlink():
            old = root.parent / f".{root.name}.old-{os.getpid()}"
            root.rename(old)
        staging.rename(root)  # atomic: the root is either absent, old, or complete
        if old is not None:
            _remove_tree(old)
    return root
