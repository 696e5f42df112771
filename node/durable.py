"""Making writes survive a power loss or kernel crash: fsync, and the order of it.

A file's bytes and its rename reach the disk in whatever order the kernel likes unless
they are synced: an unsynced rename can outlive the data it names, and an entry in a
chunk log can outlive the chunk it points at.  Filesystems that cannot sync (some FUSE
and network mounts refuse fsync on folders with EINVAL) are left as they are.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path


def sync_fd(sync: Callable[[int], None], fd: int, path: Path) -> None:
    """``os.fsync`` or ``os.fdatasync`` of ``fd`` (the file or folder ``path``); a
    filesystem that cannot sync it (EINVAL: some FUSE and network mounts refuse it on
    folders) is left as it is, any other error raised naming ``path``."""
    try:
        sync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise OSError(exc.errno, f"fsync failed: {exc.strerror}", str(path)) from None


def durable_replace(tmp: Path, final: Path, fsync: bool = True) -> None:
    """Rename ``tmp`` to ``final``; with ``fsync`` its bytes are on the disk before the rename
    and the rename is on the disk after it, so a power loss or kernel crash leaves either no
    ``final`` or a complete one (an unsynced rename can outlive the file's data)."""
    if fsync:
        fsync_path(tmp)
    os.replace(tmp, final)
    if fsync:
        fsync_path(final.parent)


def fsync_path(path: Path) -> None:
    """fsync a file or folder (see ``sync_fd``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        sync_fd(os.fsync, fd, path)
    finally:
        os.close(fd)
