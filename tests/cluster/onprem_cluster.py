"""A lab of "machines" on this host for `ray up` with the local provider (cluster/onprem.yaml).

Each machine is its own network, PID and mount namespace running its own sshd on port 22, with
root login by a temporary key only, and a private tmpfs on /tmp/ray:

    this host 10.213.77.1 ── head 10.213.77.2 (10.213.78.1) ── worker 10.213.78.2

so `ray stop`, which `ray up` and `ray down` run on every node, only ends the Ray of that
machine, Ray's fixed ports (6379, 8076, the dashboard's) collide with nobody's, and killing the
namespace's first process ends everything started in it. The head reaches the worker on its own
link (no IP forwarding on this host); each namespace routes by default towards the host side, so
Ray's detected node address is the namespace's own.

Each machine's /root is a temporary directory bind-mounted in its mount namespace (the folder holding
the venv's Python, e.g. ~/.pyenv, is bound into it): ~/ray_bootstrap_*, ~/medsweep,
~/.ray/auth_token and ~/.bashrc of a "machine" are there, never in the host's /root. The
launching side (this process) is the host, with its real HOME; it only writes the launcher's
cluster state, /tmp/ray/cluster-<name>.{lock,state}, its config cache /tmp/ray-config-<hash> and
the SSH control sockets /tmp/ray_ssh_*/<hash>, which `stop()` removes (remove_launcher_files).

Needs root, util-linux unshare/nsenter, iproute2, openssh-server/-client and rsync.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]    # file_mounts `~/medsweep: .` copies it
SSHD = "/usr/sbin/sshd"
# One /24 per link; unusual enough not to meet a real network on a test machine.
HOST_SIDE, HEAD_IP = "10.213.77.1", "10.213.77.2"
HEAD_TO_WORKER, WORKER_IP = "10.213.78.1", "10.213.78.2"


def missing_tools() -> list[str]:
    """Programs the lab needs that are not installed (empty when it can run)."""
    needed = ["unshare", "nsenter", "ip", "ssh", "ssh-keygen", "rsync"]
    missing = [tool for tool in needed if shutil.which(tool) is None]
    return missing + ([SSHD] if not os.access(SSHD, os.X_OK) else [])


def _kept_from_root() -> str:
    """The folder of /root holding this venv's Python (pyenv's ~/.pyenv), kept visible on the
    machines when their /root is replaced; '' when the interpreter lives elsewhere."""
    base = Path(sys.base_prefix).resolve()
    return base.relative_to("/root").parts[0] if base.is_relative_to("/root") else ""


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies, even without its teardown
    (unshare --kill-child then ends the namespace)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


def _run(*command: str, timeout: float = 30) -> None:
    subprocess.run(command, check=True, timeout=timeout, capture_output=True, text=True)


@dataclass
class Machine:
    name: str
    ip: str
    root: Path
    process: subprocess.Popen | None = None

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def inside(self, *command: str) -> None:
        """Run a command in this machine's network namespace."""
        _run("nsenter", "-t", str(self.pid), "-n", *command)


@dataclass
class Lab:
    """The head and ``workers`` (0 or 1) worker machines under ``root``; use as a context manager."""

    root: Path
    workers: int = 1
    key: Path = field(init=False)
    machines: list[Machine] = field(init=False, default_factory=list)
    cluster_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.workers not in (0, 1):
            raise ValueError("the lab has a head and at most one worker")
        self.key = self.root / "id_ed25519"
        self.machines = [Machine("head", HEAD_IP, self.root / "head")]
        if self.workers:
            self.machines.append(Machine("worker", WORKER_IP, self.root / "worker"))
        tag = os.getpid() % 100000
        self.host_link = f"msw{tag}h"          # the only thing of the lab in the host's namespace

    @property
    def head(self) -> Machine:
        return self.machines[0]

    @property
    def worker_ips(self) -> list[str]:
        return [machine.ip for machine in self.machines[1:]]

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "medsweep-onprem-test", "-f", str(self.key))
        self.made_run_sshd = not Path("/run/sshd").exists()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)   # sshd's privilege separation directory
        Path("/tmp/ray").mkdir(exist_ok=True)                  # the mount point of each private tmpfs
        for machine in self.machines:
            self._prepare(machine)
            machine.process = subprocess.Popen(
                ["unshare", "--net", "--pid", "--fork", "--mount-proc", "--propagation", "private",
                 "--kill-child=SIGKILL", "bash", "-c",
                 'set -e; while [ ! -e "$1/ready" ]; do sleep 0.05; done; '
                 'mount -t tmpfs -o size=2g tmpfs /tmp/ray; '
                 'if [ -n "$3" ]; then mkdir -p "$1/home/$3"; mount --bind "/root/$3" "$1/home/$3"; fi; '
                 'mount --rbind "$1/home" /root; exec "$2" -D -e -f "$1/sshd_config"',
                 "machine", str(machine.root), SSHD, _kept_from_root()],
                stdout=(machine.root / "sshd.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent)
        self._wire()
        for machine in self.machines:
            (machine.root / "ready").touch()
        for machine in self.machines:
            self._wait_for_ssh(machine)

    def _prepare(self, machine: Machine) -> None:
        machine.home.mkdir(parents=True)
        host_key = machine.root / "ssh_host_ed25519_key"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
        shutil.copyfile(self.key.with_suffix(".pub"), machine.root / "authorized_keys")
        (machine.root / "sshd_config").write_text(
            f"ListenAddress {machine.ip}:22\n"
            f"HostKey {host_key}\n"
            f"AuthorizedKeysFile {machine.root / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "PidFile none\n"
            "Subsystem sftp internal-sftp\n"
            "LogLevel ERROR\n")

    def _wire(self) -> None:
        head = self.head
        _run("ip", "link", "add", self.host_link, "type", "veth", "peer", "name", "eth0", "netns", str(head.pid))
        _run("ip", "addr", "add", f"{HOST_SIDE}/24", "dev", self.host_link)
        _run("ip", "link", "set", self.host_link, "up")
        head.inside("ip", "link", "set", "lo", "up")
        head.inside("ip", "addr", "add", f"{HEAD_IP}/24", "dev", "eth0")
        head.inside("ip", "link", "set", "eth0", "up")
        head.inside("ip", "route", "add", "default", "via", HOST_SIDE)
        for machine in self.machines[1:]:
            head.inside("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", str(machine.pid))
            head.inside("ip", "addr", "add", f"{HEAD_TO_WORKER}/24", "dev", "eth1")
            head.inside("ip", "link", "set", "eth1", "up")
            machine.inside("ip", "link", "set", "lo", "up")
            machine.inside("ip", "addr", "add", f"{machine.ip}/24", "dev", "eth0")
            machine.inside("ip", "link", "set", "eth0", "up")
            machine.inside("ip", "route", "add", "default", "via", HEAD_TO_WORKER)

    def _wait_for_ssh(self, machine: Machine, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            # A worker is reached from the head, like the head's autoscaler does (not from this host).
            via = [] if machine is self.head else ["nsenter", "-t", str(self.head.pid), "-n"]
            done = subprocess.run([*via, "ssh", *self.ssh_options(), f"root@{machine.ip}", "true"],
                                  capture_output=True, text=True, timeout=timeout)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline or machine.process.poll() is not None:
                log = (machine.root / "sshd.log").read_text()
                raise RuntimeError(f"sshd of the {machine.name} does not answer: {done.stderr}\n{log}")
            time.sleep(0.2)

    def ssh_options(self) -> list[str]:
        return ["-i", str(self.key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5"]

    def stop(self) -> None:
        """End every machine (and all it started), the host's link, and the launcher's state files."""
        for machine in reversed(self.machines):
            if machine.process is not None and machine.process.poll() is None:
                # unshare sends SIGKILL to its child, the namespace's first process; the kernel then
                # kills everything else in the namespace and the namespace goes with its links.
                os.kill(machine.pid, signal.SIGTERM)
                try:
                    machine.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(machine.pid, signal.SIGKILL)
                    machine.process.wait(timeout=10)
        subprocess.run(["ip", "link", "del", self.host_link], capture_output=True)
        for name in self.cluster_names:
            remove_launcher_files(name)
        if getattr(self, "made_run_sshd", False):
            with contextlib.suppress(OSError):
                Path("/run/sshd").rmdir()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- ray up, on the host ----------------------------------------------------------------

    def ray(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """The venv's ``ray`` CLI run on the host (the launching machine)."""
        env = dict(os.environ, RAY_UP_enable_autoscaler_v2="1")  # onprem.yaml alone must pick v1
        return subprocess.run([str(Path(sys.executable).with_name("ray")), *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)


def remove_launcher_files(cluster_name: str) -> None:
    """What `ray up/exec/submit/down` leave in /tmp for a cluster: the local provider's state and
    lock, the cached config (ray-config-<sha256>, recognised by its cluster_name) and the SSH
    control-socket folder (/tmp/ray_ssh_<user hash>/<cluster-name hash>, also the head's)."""
    for suffix in ("lock", "state"):
        Path(f"/tmp/ray/cluster-{cluster_name}.{suffix}").unlink(missing_ok=True)
    for cached in Path(tempfile.gettempdir()).glob("ray-config-*"):
        try:
            named = json.loads(cached.read_text())["config"]["cluster_name"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if named == cluster_name:
            cached.unlink(missing_ok=True)
    user = hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10]
    control = hashlib.sha256(cluster_name.encode()).hexdigest()[:10]
    shutil.rmtree(Path(tempfile.gettempdir()) / f"ray_ssh_{user}" / control, ignore_errors=True)
    with contextlib.suppress(OSError):                # only when no other cluster's sockets are there
        (Path(tempfile.gettempdir()) / f"ray_ssh_{user}").rmdir()


def lab_config(shipped: dict, lab: Lab, *, cluster_name: str, token: Path, venv: Path) -> dict:
    """cluster/onprem.yaml for the lab; every difference from the shipped file is made here.

    - cluster_name: unique per run; head_ip/worker_ips: the lab's; ssh_user/key: root/the lab's key;
    - the token of Ray's authentication comes from ``token`` instead of the launcher's ~/.ray;
    - the commands that create a venv and pip-install medsweep are dropped: each machine's
      ~/medsweep-venv is a symlink to ``venv`` (this checkout's venv, made by `make install`);
    - min/max workers: the lab's worker count.
    Everything else (the other setup commands, ~/.bashrc, start commands, file mounts) is as shipped.
    """
    config = dict(shipped)
    config["cluster_name"] = cluster_name
    config["provider"] = dict(shipped["provider"], head_ip=lab.head.ip, worker_ips=lab.worker_ips)
    config["auth"] = {"ssh_user": "root", "ssh_private_key": str(lab.key)}
    config["min_workers"] = config["max_workers"] = len(lab.worker_ips)
    mounts = dict(shipped["file_mounts"])
    assert mounts["~/.ray/auth_token"] == "~/.ray/auth_token"
    mounts["~/.ray/auth_token"] = str(token)
    config["file_mounts"] = mounts
    installs = [command for command in shipped["setup_commands"]
                if "pip install" in command or "-m venv" in command]
    assert len(installs) == 3, installs
    config["setup_commands"] = [command for command in shipped["setup_commands"] if command not in installs]
    for machine in lab.machines:
        (machine.home / "medsweep-venv").symlink_to(venv)
    return config
