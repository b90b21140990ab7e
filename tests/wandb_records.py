"""Read the history rows of an offline W&B run file (``run-*.wandb``) without uploading it.

The file is W&B's LevelDB-style log: a 7-byte header (":W&B", magic, version), then 32 KiB
blocks of records, each with a 7-byte header (CRC32, length, type: 1 full, 2 first, 3 middle,
4 last) and a protobuf ``Record`` payload.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
FILE_HEADER = 7
RECORD_HEADER = 7


def records(path: Path) -> list[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    position, pending, found = FILE_HEADER, b"", []
    while position + RECORD_HEADER <= len(data):
        space = BLOCK - position % BLOCK
        if space < RECORD_HEADER:
            position += space
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + RECORD_HEADER])
        payload = data[position + RECORD_HEADER:position + RECORD_HEADER + length]
        position += RECORD_HEADER + length
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            found.append(record)
    return found


def history(path: Path) -> list[dict]:
    """Every ``wandb.log`` row of the run, as a dict of key → value."""
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            for r in records(path) if r.WhichOneof("record_type") == "history"]
