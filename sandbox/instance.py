"""One Asterisk 22 instance running from the shared root, with its own run directory and ports.

Isolation: each instance runs in a private mount namespace (``unshare --mount``) where its run
directory is bind-mounted at ``/run/hotline`` inside the root, then ``chroot`` + ``asterisk
-f``. The bind mount exists only in that namespace, so it vanishes with the process however it
dies: nothing is left mounted on the host, and any number of instances (the hotline, a
simulated carrier) can use the same root and the same in-chroot paths at once. The root already
holds /dev nodes (mmdebstrap made them); Asterisk needs nothing from /proc or /sys.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from hotline.settings import PROJECT_ROOT, Settings
from ivr import prompts
from sandbox.root import (
    ASTERISK_BIN,
    CHROOT_RUN_DIR,
    PACKAGES,
    SandboxError,
    build_root,
    is_complete,
    unavailable_reason,
)

log = logging.getLogger("hotline.sandbox")

DIALPLAN_DIR = PROJECT_ROOT / "ivr" / "dialplans"
CONF = f"{CHROOT_RUN_DIR}/etc/asterisk/asterisk.conf"
PID_FILE = "sandbox.pid"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
STDOUT_LOG = "log/stdout.log"
#: run-directory folders Asterisk writes into (asterisk.conf [directories])
RUN_SUBDIRS = ("etc/asterisk", "lib", "share", "agi-bin", "spool", "run", "log", "cache",
               "log/cel-custom")  # cel_custom does not create its folder (the call ledger)
#: a clean environment: nothing of ours (secrets in HOTLINE_*) leaks into Asterisk
CHILD_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
# sh -c _ENTER NAME ROOT SOURCE TARGET [SOURCE TARGET...] -- ARGV...: bind-mounts each host
# SOURCE at ROOT/TARGET (in the new mount namespace only), then runs ARGV chrooted in ROOT.
_ENTER = (
    'root="$1"; shift; '
    'while [ "$1" != "--" ]; do mount --bind "$1" "$root$2" || exit 125; shift 2; done; '
    'shift; exec chroot "$root" "$@"'
)


def _process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in ticks), or None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when its parent dies (kept across exec)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _port_free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _check_conf_value(name: str, value: str) -> str:
    # ';' starts a comment in Asterisk config files and a newline would start a new setting.
    if any(c in value for c in ";\r\n") or not value.strip():
        raise SandboxError(f"{name} must be non-empty without ';' or line breaks")
    return value


@dataclass
class AsteriskSandbox:
    """An Asterisk instance; ``name`` distinguishes instances (and names the SIP user agent)."""

    run_dir: Path
    root: Path
    conf_dir: Path = PROJECT_ROOT / "asterisk_conf"
    dialplan_dir: Path = DIALPLAN_DIR
    name: str = "hotline"
    ami_port: int = 5038
    ami_username: str = "hotline"
    ami_secret: str = "hotline-sandbox-secret"
    sip_port: int = 5060
    #: the other end of the PJSIP trunk: endpoint name and its SIP port on 127.0.0.1
    trunk_peer: str = "carrier"
    peer_sip_port: int | None = None  # None: sip_port + 1
    fastagi_host: str = "127.0.0.1"
    fastagi_port: int = 4573
    fastagi_fallback: str = ""  # a second instance's agi://host:port (HOTLINE_FASTAGI_FALLBACK)
    rtp_start: int = 10000
    rtp_end: int = 10999
    start_timeout: float = 60.0
    #: more host directories visible to Asterisk: run-dir-relative path -> host directory
    #: (from_settings: the IVR's prompts, played as hotline/<id>, at share/sounds/hotline, and
    #: the Chinese digits SAY DIGITS plays on a zh channel at share/sounds/zh)
    mounts: dict[str, Path] = field(default_factory=dict)
    #: kill Asterisk when the process that started it dies (tests: no orphan holding the
    #: ports after a killed test run); off for ``hotline asterisk start``, which detaches
    die_with_parent: bool = False
    settings: Settings | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> AsteriskSandbox:
        values: dict[str, Any] = {
            "run_dir": settings.effective_asterisk_run_dir,
            "root": settings.asterisk_root,
            "conf_dir": settings.asterisk_conf_dir,
            "ami_port": settings.ami_port,
            "ami_username": settings.ami_username,
            "ami_secret": settings.ami_secret,
            "sip_port": settings.asterisk_sip_port,
            "fastagi_host": settings.fastagi_host,
            "fastagi_port": settings.fastagi_port,
            "fastagi_fallback": settings.fastagi_fallback,
            "rtp_start": settings.asterisk_rtp_start,
            "rtp_end": settings.asterisk_rtp_end,
            "start_timeout": settings.asterisk_start_timeout,
            # Asterisk resolves hotline/<id> to <astdatadir>/sounds/hotline/<id> for Playback
            # and for RECORD FILE alike, so the prompts directory must be writable there too.
            # SAY DIGITS on a zh channel (the 回访) looks for <astdatadir>/sounds/zh/digits/<d>
            # first: the Chinese digits `hotline prompts build` renders (ivr/prompts.py)
            "mounts": {
                f"share/sounds/{prompts.SOUND_PREFIX}": prompts.prompts_dir(settings),
                f"share/sounds/{prompts.LANGUAGE}": prompts.language_dir(settings),
            },
            "settings": settings,
        }
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir).expanduser().absolute()
        self.mounts = {rel.strip("/"): Path(src).expanduser().absolute()
                       for rel, src in self.mounts.items()}
        self.root = Path(self.root).expanduser().absolute()
        if not self.rtp_start < self.rtp_end:
            raise SandboxError("the RTP port range is empty (rtp_start >= rtp_end)")

    # ------------------------------------------------------------------ the root
    def ensure_built(self) -> None:
        build_root(self.root)

    @property
    def built(self) -> bool:
        return is_complete(self.root, PACKAGES)

    # ------------------------------------------------------------------ configuration
    def template_values(self) -> dict[str, str]:
        return {
            "NAME": _check_conf_value("name", self.name),
            "RUN_DIR": CHROOT_RUN_DIR,
            "AMI_PORT": str(self.ami_port),
            "AMI_USERNAME": _check_conf_value("ami_username", self.ami_username),
            "AMI_SECRET": _check_conf_value("ami_secret", self.ami_secret),
            "SIP_PORT": str(self.sip_port),
            "PEER_SIP_PORT": str(self.peer_sip_port or self.sip_port + 1),
            "TRUNK_PEER": _check_conf_value("trunk_peer", self.trunk_peer),
            "FASTAGI_HOST": _check_conf_value("fastagi_host", self.fastagi_host),
            "FASTAGI_PORT": str(self.fastagi_port),
            "FASTAGI_FALLBACK": self.fastagi_fallback,
            "RTP_START": str(self.rtp_start),
            "RTP_END": str(self.rtp_end),
        }

    def render(self) -> Path:
        """Write the configuration into RUN_DIR/etc/asterisk (replacing what was there)."""
        etc = self.run_dir / "etc" / "asterisk"
        shutil.rmtree(etc, ignore_errors=True)
        for sub in RUN_SUBDIRS:
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        values = self.template_values()
        for source in sorted(self.conf_dir.glob("*.conf")):
            try:
                text = Template(source.read_text(encoding="utf-8")).substitute(values)
            except (KeyError, ValueError) as exc:
                raise SandboxError(f"{source}: bad or unknown placeholder {exc}") from exc
            (etc / source.name).write_text(text, encoding="utf-8")
        (etc / "dialplans").mkdir()
        for source in sorted(self.dialplan_dir.glob("*.conf")):
            shutil.copyfile(source, etc / "dialplans" / source.name)
        self._link_shared_data()
        for relative, source in self.mounts.items():
            Path(source).mkdir(parents=True, exist_ok=True)
            (self.run_dir / relative).mkdir(parents=True, exist_ok=True)  # the mount point
        return etc

    def _link_shared_data(self) -> None:
        """astdatadir is per instance (so a site can add its own prompts under share/sounds),
        but the root's prompts and XML documentation are linked in, not copied. The links are
        absolute paths inside the chroot. A mount wins over a root folder of the same name
        (e.g. a Chinese sound pack's sounds/zh in the root: our zh folder is mounted there)."""
        share = self.run_dir / "share"
        (share / "sounds").mkdir(parents=True, exist_ok=True)
        root_share = self.root / "usr/share/asterisk"
        wanted = [(entry.name, f"/usr/share/asterisk/{entry.name}")
                  for entry in root_share.iterdir() if entry.name != "sounds"]
        wanted += [(f"sounds/{entry.name}", f"/usr/share/asterisk/sounds/{entry.name}")
                   for entry in (root_share / "sounds").iterdir()]
        mounted = {rel.removeprefix("share/") for rel in self.mounts if rel.startswith("share/")}
        for name in mounted:
            if (share / name).is_symlink():  # linked by an earlier start: the mount point
                (share / name).unlink()
        wanted = [(name, target) for name, target in wanted if name not in mounted]
        for name, target in wanted:
            link = share / name
            if link.is_symlink() or not link.exists():
                with contextlib.suppress(FileNotFoundError):
                    link.unlink()
                link.symlink_to(target)

    # ------------------------------------------------------------------ processes
    def _command(self, *argv: str) -> list[str]:
        """``argv`` run inside the chroot, with the run dir mounted in a private namespace."""
        binds = [str(self.run_dir), CHROOT_RUN_DIR]
        for relative, source in self.mounts.items():
            binds += [str(source), f"{CHROOT_RUN_DIR}/{relative}"]
        return [
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", _ENTER, "hotline-sandbox", str(self.root), *binds, "--", *argv,
        ]

    @property
    def pid_file(self) -> Path:
        return self.run_dir / PID_FILE

    def pid(self) -> int | None:
        """The running instance's pid, or None (the pid file also guards against pid reuse)."""
        try:
            pid_text, started = self.pid_file.read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        return pid if _process_start_time(pid) == started else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self) -> None:
        """Render the configuration, start Asterisk and wait until it is fully booted."""
        if self.is_running():
            raise SandboxError(
                f"instance {self.name!r} already runs (pid {self.pid()}); stop it first "
                "(hotline asterisk stop)"
            )
        if reason := unavailable_reason():
            raise SandboxError(reason)
        if not self.built:
            raise SandboxError(f"no complete Asterisk root at {self.root}: build it first")
        # A leftover Asterisk on our ports would answer in our place; refuse to start.
        for port, kind in ((self.ami_port, socket.SOCK_STREAM), (self.sip_port, socket.SOCK_DGRAM)):
            if not _port_free(port, kind):
                raise SandboxError(f"port {port} on 127.0.0.1 is in use")
        self.render()
        stdout = open(self.run_dir / STDOUT_LOG, "ab")  # the child keeps its own copy
        try:
            self._proc = subprocess.Popen(
                self._command(ASTERISK_BIN, "-f", "-n", "-C", CONF),
                stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.STDOUT,
                env=CHILD_ENV, start_new_session=True,  # its own process group, for stop()
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        finally:
            stdout.close()
        pid = self._proc.pid
        self.pid_file.write_text(f"{pid} {_process_start_time(pid)}\n")
        try:
            self._wait_booted()
        except BaseException:
            self.stop()
            raise
        log.info("asterisk started", extra={"instance": self.name, "pid": pid})

    def _wait_booted(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise SandboxError(
                    f"asterisk exited with {self._proc.returncode} during start:\n{self.log_tail()}"
                )
            try:
                # Blocks until boot completes once the control socket accepts connections. An
                # Asterisk that exits meanwhile (a required module failed) closes the connection
                # with status 0, hence the check of the text main/cli.c prints when booted.
                out = self.cli("core waitfullybooted",
                               timeout=max(1.0, deadline - time.monotonic()))
                if "fully booted" in out and self.is_running():
                    return
                last = out.strip() or "no answer"
            except SandboxError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise SandboxError(
            f"asterisk not fully booted after {self.start_timeout} s ({last}):\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for name in (STDOUT_LOG, "log/messages.log"):
            with contextlib.suppress(OSError):
                text += (self.run_dir / name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def cli(self, command: str, timeout: float = 30.0) -> str:
        """Run one CLI command through the instance's control socket; return its output."""
        try:
            result = subprocess.run(
                self._command(ASTERISK_BIN, "-C", CONF, "-rx", command),
                stdin=subprocess.DEVNULL, capture_output=True, text=True, env=CHILD_ENV,
                timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"CLI {command!r} took longer than {timeout} s") from exc
        output = result.stdout + result.stderr
        if result.returncode != 0 or output.startswith("Unable to connect to remote asterisk"):
            raise SandboxError(f"CLI {command!r} failed ({result.returncode}): {output.strip()}")
        return result.stdout

    def stop(self, timeout: float = 15.0) -> None:
        """Stop Asterisk and make sure no process of it is left (verified, else SandboxError)."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(SandboxError):
                self.cli("core stop now", timeout=timeout)
            if not self._wait_gone(pid, timeout):
                log.warning("asterisk ignored 'core stop now'; killing it",
                            extra={"instance": self.name, "pid": pid})
                for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, sig)
                    if self._wait_gone(pid, wait):
                        break
            if _process_start_time(pid) is not None or _group_members(pid):
                raise SandboxError(f"asterisk (pid {pid}) is still running after stop")
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1)
            self._proc = None
        # Nothing to unmount: the bind mount lived in the process's own mount namespace.
        self.pid_file.unlink(missing_ok=True)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.pid == pid:
                self._proc.poll()  # reap our child so it does not linger as a zombie
            if _process_start_time(pid) is None and not _group_members(pid):
                return True
            time.sleep(0.1)
        return False
