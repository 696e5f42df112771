"""Start-up checks of a node's configuration against this machine: what would otherwise
fail late, or as the OOM killer's, not as an error naming the key."""

from __future__ import annotations

import os
from pathlib import Path

from node import config as config_mod
from node.builder import ring_bytes
from sim.wire import protocol


def check_ring_fits(n_sources: int, n_inputs: int, n_outputs: int, raw_bytes: int, window: int,
                     workers: int = 1) -> None:  # fmt: skip
    """Refuse a ``builder.window`` whose rings (one per worker) would take more than half
    the machine's memory: each is all touched at start, so it would be the OOM killer's,
    not an error."""
    need = ring_bytes(n_sources, n_inputs, n_outputs, raw_bytes, window) * workers
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # a platform that does not say
        return
    if need > memory // 2:
        each = f", one ring in each of {workers} workers" if workers > 1 else ""
        raise config_mod.ConfigError(
            f"builder.window = {window}: the ring would take {need / 2**30:.1f} GiB ({n_sources} sources' "
            f"fragments of {n_inputs} inputs per event{each}), more than half this machine's {memory / 2**30:.1f} GiB"
        )


def check_offload_fits(batch: int, n_inputs: int, n_outputs: int, raw_bytes: int, max_bytes: int) -> None:
    """An offload batch, and a board's reply to it, must fit in one message: a larger reply
    makes ZeroMQ drop the board's connection (the socket's size limit), and every batch
    would time out to the CPU with no word why."""
    for what, n_in, n_out in (("request", n_inputs, 0), ("reply", 0, n_outputs)):
        size = protocol.HEADER_SIZE + batch * protocol.fragment_dtype(n_in, n_out, raw_bytes).itemsize
        if size > max_bytes:
            raise config_mod.ConfigError(
                f"offload.batch = {batch}: a board's {what} of {batch} fragments takes {size} bytes, "
                f"more than security.max_message_bytes = {max_bytes}"
            )


def check_writable(directory: Path) -> None:
    """Create and remove a file in ``directory`` (raises OSError if it cannot be written)."""
    probe = directory / f".fpgaflow-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
    finally:  # also when cut short (an exception from a signal handler)
        probe.unlink(missing_ok=True)
