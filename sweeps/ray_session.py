"""Connecting to Ray: the one place medsweep starts a local instance or joins a cluster, and
checks that the cluster can run what a sweep asks for.

Both checks exist so that a wrong address or an impossible resource request is one clear error
within seconds, rather than Ray retrying a dead address or queueing trials forever.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from trainables.errors import MedsweepError

CONNECT_TIMEOUT_SECONDS = 30.0
# Ray 2.60's GCS, raylet and workers listen on every interface and have no setting to bind them
# to the loopback address; its token authentication (on unless this variable turns it off) is
# what keeps other hosts out of a local run.
AUTH_MODE_VARIABLE = "RAY_AUTH_MODE"
# Ray marks a node's GPU type with a resource of this prefix.
ACCELERATOR_PREFIX = "accelerator_type:"


class RayConnectionError(MedsweepError, ConnectionError):
    """The Ray cluster named by ``--address`` cannot be reached."""


class ResourceRequestError(MedsweepError, ValueError):
    """A trial asks for more CPUs or GPUs than any node of the cluster has."""


class DashboardError(MedsweepError, ValueError):
    """``--dashboard`` cannot start: Ray's dashboard packages are missing, or the run joins a
    cluster (which has a dashboard of its own)."""


# The address the local dashboard listens on: this machine only, never the network.
DASHBOARD_HOST = "127.0.0.1"


def ensure_ray(address: str | None, *, connect_timeout: float | None = None, dashboard: bool = False,
               warn: Callable[[str], None] = print) -> bool:
    """Connect to ``address`` or start a local Ray instance; True when this call started it.

    A cluster address is probed first and given up on after ``connect_timeout`` seconds
    (default ``CONNECT_TIMEOUT_SECONDS``; Ray itself retries a dead address without end).
    ``dashboard`` starts the local instance with Ray's dashboard on ``DASHBOARD_HOST`` and
    prints its URL (``check_dashboard`` first: it refuses a cluster and a minimal Ray install).
    """
    import ray
    if ray.is_initialized():
        return False
    if dashboard:
        check_dashboard(address=address)
    if address:
        wait_for_cluster(address, timeout=connect_timeout or CONNECT_TIMEOUT_SECONDS)
        try:
            ray.init(address=address)
        except ConnectionError as exc:
            raise RayConnectionError(f"--address {address}: {exc}") from exc
    else:
        if warning := local_auth_warning():
            warn(warning)
        # "local" always starts a private instance; a bare ray.init() would attach to whatever
        # cluster /tmp/ray last recorded, even a dead one.
        context = ray.init(address="local", include_dashboard=dashboard,
                           **({"dashboard_host": DASHBOARD_HOST} if dashboard else {}))
        if dashboard:
            warn(f"Ray dashboard: {dashboard_url(context.dashboard_url)}")
    return True


def dashboard_dependency_error() -> ImportError | None:
    """Ray's own check for the dashboard's packages (absent from a minimal ``pip install ray``)."""
    from ray._private.utils import get_dashboard_dependency_error
    return get_dashboard_dependency_error()


def check_dashboard(*, address: str | None) -> None:
    """Refuse ``--dashboard`` before Ray starts when it cannot work: with ``--address`` (the
    cluster's head already serves a dashboard) or without the ``ray[default]`` packages (Ray
    would fail with a traceback while starting)."""
    if address:
        raise DashboardError(f"--dashboard starts a dashboard for a local run only; the cluster at --address "
                             f"{address} has its own, served by its head node (port 8265 by default: "
                             f"`ray dashboard cluster/aws.yaml` forwards it to this machine)")
    if (missing := dashboard_dependency_error()) is not None:
        raise DashboardError(f"--dashboard needs Ray's dashboard packages, which this environment lacks "
                             f"({missing}); install them with: pip install 'ray[default]'")


def dashboard_url(url: str) -> str:
    """``url`` as a browser link (Ray reports it without a scheme)."""
    return url if "://" in url else f"http://{url}"


def local_auth_warning() -> str | None:
    """A warning when the environment turned off Ray's token authentication (Ray reads the
    setting once per process, so it cannot be turned back on from here)."""
    if os.environ.get(AUTH_MODE_VARIABLE, "").lower() != "disabled":
        return None
    return (f"warning: {AUTH_MODE_VARIABLE}=disabled: this run's Ray processes listen on every network interface "
            f"and will accept anyone who reaches them, with no token. Unset {AUTH_MODE_VARIABLE} (Ray then "
            f"requires its token, kept in ~/.ray/auth_token) unless this machine is isolated.")


def bootstrap_host_port(address: str) -> tuple[str, int]:
    """The host and port that ``address`` names (``auto`` read from Ray's records of the running
    cluster, ``ray://`` client addresses as written)."""
    from ray._private.services import canonicalize_bootstrap_address_or_die

    plain = address.removeprefix("ray://")
    try:
        resolved = canonicalize_bootstrap_address_or_die(plain) if plain == "auto" else plain
    except ConnectionError as exc:
        raise RayConnectionError(f"--address {address}: {exc} Start one with `ray start --head`, "
                                 f"or leave out --address for a local run.") from exc
    host, sep, port = resolved.rpartition(":")
    if not sep or not port.isdigit():
        raise RayConnectionError(f"--address {address}: expected HOST:PORT (for example 10.0.0.5:6379), "
                                 f"'auto', or ray://HOST:PORT")
    return host.strip("[]"), int(port)


def wait_for_cluster(address: str, *, timeout: float | None = None) -> None:
    """Return once ``address`` accepts a TCP connection; after ``timeout`` seconds (default
    ``CONNECT_TIMEOUT_SECONDS``), a clear error."""
    timeout = CONNECT_TIMEOUT_SECONDS if timeout is None else timeout
    host, port = bootstrap_host_port(address)
    deadline = time.monotonic() + timeout
    last_error: OSError | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=min(5.0, timeout)):
                return
        except OSError as exc:
            last_error = exc
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    raise RayConnectionError(f"--address {address}: no Ray cluster answered at {host}:{port} within {timeout:.0f} s "
                             f"({last_error}); check the address (`ray status` on the head prints it), that "
                             f"the head is running, and that the port is open to this machine")


def alive_nodes() -> int:
    import ray
    return sum(1 for node in ray.nodes() if node.get("Alive"))


@dataclass(frozen=True)
class NodeCapacity:
    """What one alive node has in total (not what is free now), and its GPUs' type as Ray
    detected it (``accelerator_type:…``; None without GPUs or when Ray names none)."""

    cpus: float
    gpus: float
    accelerator: str | None = None

    def fits(self, cpus: float, gpus: float) -> bool:
        return self.cpus >= cpus and self.gpus >= gpus


def node_capacities() -> list[NodeCapacity]:
    import ray
    return [NodeCapacity(cpus=float(node["Resources"].get("CPU", 0)), gpus=float(node["Resources"].get("GPU", 0)),
                         accelerator=accelerator_of(node["Resources"]))
            for node in ray.nodes() if node.get("Alive")]


def local_capacity() -> NodeCapacity:
    """The most a local Ray instance started now would have: this machine's CPUs and the GPUs
    visible to this process (Ray counts the same, or fewer CPUs where a cgroup limits them)."""
    import torch
    return NodeCapacity(cpus=float(os.cpu_count() or 1), gpus=float(torch.cuda.device_count()))


def accelerator_of(resources: dict) -> str | None:
    """The GPU type a node's Ray resources name (``accelerator_type:H100`` → ``H100``)."""
    names = sorted(key.removeprefix(ACCELERATOR_PREFIX) for key in resources if key.startswith(ACCELERATOR_PREFIX))
    return names[0] if names else None


def cluster_autoscales() -> bool:
    """Whether an autoscaler reports on this cluster (it may add nodes a request needs)."""
    from ray.experimental.internal_kv import _internal_kv_get, _internal_kv_initialized
    if not _internal_kv_initialized():
        return False
    status = _internal_kv_get("__autoscaling_status")
    return bool(status) and "autoscaler_report" in json.loads(status)


def check_trial_resources(*, cpus: float, gpus: float, local: bool, warn,
                          nodes: list[NodeCapacity] | None = None) -> None:
    """Fail when no node (default: Ray's alive nodes) can ever hold one trial; on an
    autoscaling cluster, warn instead (a node that fits may still be added)."""
    nodes = node_capacities() if nodes is None else nodes
    if any(node.fits(cpus, gpus) for node in nodes):
        return
    have = ", ".join(f"{node.cpus:g} CPU + {node.gpus:g} GPU" for node in nodes) or "no alive node"
    message = (f"each trial asks for {cpus:g} CPU + {gpus:g} GPU, but no node of the "
               f"{'local machine' if local else 'cluster'} has that much ({have}); lower --cpus-per-trial / "
               f"--gpus-per-trial (0 for no GPU), or use --profile cpu")
    if not local and cluster_autoscales():
        warn(f"warning: {message}. The cluster's autoscaler may add such a node; trials wait until it does.")
        return
    raise ResourceRequestError(message)
