"""Pretrained weights from the Hugging Face Hub (timm's source) without a minute of retries when
the Hub cannot be reached.

``huggingface_hub`` retries each request five times with growing pauses before it looks in its
local cache, so an offline machine spends about a minute per model before the error. One quick
connection attempt first says whether the Hub (or the HTTPS proxy in front of it) answers; when
it does not, the download runs in the library's offline mode: weights in the local cache load
as before, missing ones fail at once.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

# Seconds the one connection attempt to the Hub may take.
HUB_PROBE_SECONDS = 3.0


def hub_address() -> tuple[str, int]:
    """Where a request to the Hub goes first: the HTTPS proxy when one is set, else the Hub."""
    from huggingface_hub import constants

    url = urlparse(urllib.request.getproxies().get("https") or constants.ENDPOINT)
    return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)


def hub_reachable(timeout: float = HUB_PROBE_SECONDS) -> bool:
    """Whether a TCP connection to ``hub_address`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection(hub_address(), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def hub_offline_unless_reachable() -> Iterator[None]:
    """Within this block the Hub is in offline mode (``HF_HUB_OFFLINE``) when it cannot be
    reached now, so a download takes the local cache or fails at once."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or hub_reachable():
        yield
        return
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = False
