"""Connecting to Ray: the one place medsweep starts a local instance or joins a cluster."""

from __future__ import annotations


def ensure_ray(address: str | None) -> bool:
    """Connect to ``address`` or start a local Ray instance; True when this call started it."""
    import ray
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
    else:
        # "local" always starts a private instance; a bare ray.init() would attach to whatever
        # cluster /tmp/ray last recorded, even a dead one.
        ray.init(address="local", include_dashboard=False)
    return True


def alive_nodes() -> int:
    import ray
    return sum(1 for node in ray.nodes() if node.get("Alive"))
