"""A one-node Slurm on this machine, for running ``cluster/slurm/medsweep.sbatch`` for real.

``slurm_cluster()`` writes a slurm.conf into a temporary directory, starts ``munged`` (as the
``munge`` user, on a private socket) and ``slurmctld -D`` / ``slurmd -D`` as child processes in
their own process groups, and waits until ``sinfo`` shows the node idle. Every Slurm command the
caller runs must carry ``cluster.env`` (``SLURM_CONF`` points at the private configuration).

Teardown cancels every job, stops the daemons it started and any process a job left behind
(found by the private ``SLURM_CONF`` in its environment, or by the Ray temp directory given to
the job), removes what it added to ``/etc/hosts`` and deletes the temporary directory, so the
machine is as it was and the next run starts from scratch. Needs root and Debian's ``slurmctld
slurmd slurm-client munge`` (``cluster/tests/install-debian-packages.sh``). There is no
slurmdbd, so ``sacct`` does not work: ``job()`` reads ``scontrol show job``.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

HOSTS_FILE = Path("/etc/hosts")
HOSTS_MARK = "# added by medsweep tests/cluster/slurm_cluster.py"
DEFAULT_MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_USER = "munge"
# Seconds a job step credential lives, which is also how long a requeued job waits before it
# starts again (Slurm's default: 120).
CRED_EXPIRE = 15
# Job states after which a job runs no more (scontrol's JobState).
FINISHED_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
                   "BOOT_FAIL", "DEADLINE"}


class SlurmError(RuntimeError):
    """The test Slurm could not start, or a command against it failed."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"


@dataclass
class SlurmCluster:
    """The running test Slurm: its directory, configuration and the environment that reaches it."""

    root: Path
    hostname: str
    cpus: int
    partition: str
    env: dict[str, str]
    logs: list[Path] = field(default_factory=list)

    def run(self, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise SlurmError(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    def sbatch(self, *arguments: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        """Submit a batch job (``sbatch --parsable``); its id. ``env`` is added to ``self.env``."""
        result = subprocess.run(["sbatch", "--parsable", *arguments], env={**self.env, **(env or {})},
                                capture_output=True, text=True, timeout=60, cwd=cwd)
        if result.returncode != 0:
            raise SlurmError(f"sbatch {' '.join(arguments)} exited {result.returncode}: {result.stderr.strip()}")
        return int(result.stdout.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """``scontrol show job``'s KEY=VALUE fields (JobState, ExitCode, Restarts, StdOut, …)."""
        text = self.run("scontrol", "show", "job", "-o", str(job_id)).stdout
        return dict(re.findall(r"(\w+)=(\S*)", text))

    def wait(self, job_id: int, *, timeout: float, poll: float = 2.0) -> dict[str, str]:
        """Poll until the job has finished (or ``timeout`` seconds pass: SlurmError); its fields."""
        deadline = time.monotonic() + timeout
        while True:
            fields = self.job(job_id)
            if fields.get("JobState") in FINISHED_STATES:
                return fields
            if time.monotonic() > deadline:
                raise SlurmError(f"job {job_id} still {fields.get('JobState')} after {timeout:.0f} s")
            time.sleep(poll)

    def wait_for_state(self, job_id: int, states: set[str], *, timeout: float, poll: float = 1.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while (fields := self.job(job_id)).get("JobState") not in states:
            if time.monotonic() > deadline:
                raise SlurmError(f"job {job_id} still {fields.get('JobState')}, not {sorted(states)}, "
                                 f"after {timeout:.0f} s")
            time.sleep(poll)
        return fields

    def node_state(self) -> str:
        return self.run("sinfo", "-h", "-N", "-n", self.hostname, "-o", "%T", check=False).stdout.strip()

    def diagnostics(self) -> str:
        return "\n".join(f"--- {log}\n{_tail(log)}" for log in self.logs)


def _ensure_hostname_resolves(hostname: str) -> bool:
    """Add ``127.0.0.1 hostname`` to /etc/hosts when the name does not resolve; True if added."""
    try:
        socket.gethostbyname(hostname)
        return False
    except OSError:
        with HOSTS_FILE.open("a") as hosts:
            hosts.write(f"127.0.0.1 {hostname} {HOSTS_MARK}\n")
        return True


def _remove_hosts_line() -> None:
    lines = HOSTS_FILE.read_text().splitlines(keepends=True)
    HOSTS_FILE.write_text("".join(line for line in lines if HOSTS_MARK not in line))


def _slurm_conf(root: Path, hostname: str, cpus: int, partition: str, munge_socket: Path) -> str:
    return f"""\
ClusterName=medsweeptest
SlurmctldHost={hostname}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket},cred_expire={CRED_EXPIRE}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
MinJobAge=600
KillWait=10
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName={hostname} CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName={partition} Nodes={hostname} Default=YES MaxTime=INFINITE State=UP
"""


def _start(command: list[str], log: Path, env: dict[str, str], **kwargs) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                **kwargs)


def _stop_group(process: subprocess.Popen | None, grace: float = 10.0) -> None:
    """SIGTERM the process group of ``process`` (started with its own session), then SIGKILL."""
    if process is None or process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def pids_marked(markers: list[str]) -> list[int]:
    """Processes (other than this one) whose environment or command line holds any of ``markers``."""
    found = []
    own = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            text = (entry / "environ").read_bytes() + b"\0" + (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(marker.encode() in text for marker in markers):
            found.append(int(entry.name))
    return found


def kill_marked(markers: list[str], grace: float = 10.0) -> list[int]:
    """SIGTERM, then after ``grace`` seconds SIGKILL, every process marked (``pids_marked``)."""
    pids = pids_marked(markers)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while (pids := pids_marked(markers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not pids:
            break
    return pids


def _wait_for_socket(path: Path, process: subprocess.Popen, log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SlurmError(f"munged did not start:\n{_tail(log)}")
        time.sleep(0.1)


@contextmanager
def slurm_cluster(*, cpus: int | None = None, extra_markers: tuple[str, ...] = (),
                  start_timeout: float = 60) -> Iterator[SlurmCluster]:
    """A one-node Slurm on localhost for the duration of the ``with`` block (see the module doc).
    ``extra_markers``: strings (e.g. a Ray temp dir) by which teardown also finds and kills the
    processes a job left."""
    if os.geteuid() != 0:
        raise SlurmError("the test Slurm runs slurmctld/slurmd as root: run as root (make test-cluster)")
    missing = [tool for tool in ("slurmctld", "slurmd", "sbatch", "munged") if not shutil.which(tool)]
    if missing:
        raise SlurmError(f"missing {', '.join(missing)}: run cluster/tests/install-debian-packages.sh")
    hostname = socket.gethostname().split(".")[0]
    cpus = cpus or os.cpu_count() or 1
    # Short: Slurm and munge keep Unix sockets in it.
    root = Path(tempfile.mkdtemp(prefix="msslurm-", dir="/tmp"))
    root.chmod(0o755)
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    munge_user = pwd.getpwnam(MUNGE_USER)
    munge_dir = root / "munge"
    munge_dir.mkdir(mode=0o755)
    os.chown(munge_dir, munge_user.pw_uid, munge_user.pw_gid)
    munge_socket = munge_dir / "munge.socket"
    conf = root / "slurm.conf"
    partition = "medsweep"
    conf.write_text(_slurm_conf(root, hostname, cpus, partition, munge_socket))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    for variable in [name for name in env if name.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))]:
        if variable != "SLURM_CONF":
            env.pop(variable)
    cluster = SlurmCluster(root=root, hostname=hostname, cpus=cpus, partition=partition, env=env,
                           logs=[munge_dir / "munged.log", root / "slurmctld.log", root / "slurmd.log",
                                 root / "slurmctld.out", root / "slurmd.out"])
    added_host = _ensure_hostname_resolves(hostname)
    munged = slurmctld = slurmd = None
    try:
        key = DEFAULT_MUNGE_KEY
        if not key.is_file():
            key = munge_dir / "munge.key"
            subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True)
            os.chown(key, munge_user.pw_uid, munge_user.pw_gid)
        munge_log = munge_dir / "munged.log"
        munged = subprocess.Popen(
            ["munged", "--foreground", f"--socket={munge_socket}", f"--key-file={key}",
             f"--pid-file={munge_dir / 'munged.pid'}", f"--log-file={munge_log}", f"--seed-file={munge_dir / 'seed'}"],
            user=MUNGE_USER, group=munge_user.pw_gid, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_socket(munge_socket, munged, munge_log)
        slurmctld = _start(["slurmctld", "-D", "-i", "-f", str(conf)], root / "slurmctld.out", env)
        slurmd = _start(["slurmd", "-D", "-f", str(conf)], root / "slurmd.out", env)
        deadline = time.monotonic() + start_timeout
        while (state := cluster.node_state()) not in ("idle", "mixed"):
            for name, process in (("slurmctld", slurmctld), ("slurmd", slurmd)):
                if process.poll() is not None:
                    raise SlurmError(f"{name} exited {process.returncode}\n{cluster.diagnostics()}")
            if time.monotonic() > deadline:
                raise SlurmError(f"node {hostname} is {state or 'unknown'}, not idle, after {start_timeout:.0f} s\n"
                                 f"{cluster.diagnostics()}")
            time.sleep(0.5)
        yield cluster
    finally:
        if slurmctld is not None and slurmctld.poll() is None:
            cluster.run("scancel", "--full", f"--partition={partition}", check=False)
            deadline = time.monotonic() + 30
            while cluster.run("squeue", "-h", "-t", "running,completing", check=False).stdout.strip() \
                    and time.monotonic() < deadline:
                time.sleep(0.5)
        _stop_group(slurmd)
        _stop_group(slurmctld)
        # slurmstepd and the jobs' processes (Ray's included) carry SLURM_CONF in their environment.
        kill_marked([f"SLURM_CONF={conf}", *extra_markers])
        _stop_group(munged)
        if added_host:
            _remove_hosts_line()
        shutil.rmtree(root, ignore_errors=True)
