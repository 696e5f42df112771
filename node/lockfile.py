"""One live process per file: an flock on a lock file beside it, naming its holder.

The node's sinks lock their files of a prefix (``node.sinks.hold_prefix``), and a node
(or a supervisor) its status file (``node.metrics.hold_status``).  An flock: the kernel
drops it when the process dies, so the lock file a stop or a crash leaves blocks no later
start.  The holder writes its pid and its host in it, for the error of the one refused (on
a directory shared between hosts, NFS, the kernel here does not know another host's holder)."""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path


class Held(RuntimeError):
    """A live process holds the lock file ``path``: its ``pid`` (None: not yet written, or
    a lock file that another user left, in which the pid is not rewritten) and, where the
    kernel here did not name it, the ``host`` it wrote (named when it is not this one)."""

    def __init__(self, path: Path, pid: int | None, host: str | None = None):
        self.path, self.pid, self.host = path, pid, host
        elsewhere = host is not None and host != socket.gethostname()
        if pid is None:
            holder = "another process (its pid not yet written)"
        elif elsewhere:
            holder = f"another process (pid {pid} on host {host})"
        else:
            holder = f"{'this' if pid == os.getpid() else 'another'} process (pid {pid})"
        super().__init__(f"{path}: held by {holder}")
        self.holder = holder


def _holder(fd: int) -> tuple[int | None, str | None]:
    """Who holds the lock on ``fd``'s file, (pid, host): the kernel's word where it gives
    it (Linux's /proc/locks: this host), else the pid and host the holder wrote, which a
    holder that could open the file only read-only (another user's) did not: the one left
    there named a process long gone, or another one since given its number."""
    st = os.fstat(fd)
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as locks:
            for line in locks:
                fields = line.split()  # N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE START END
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == where and fields[4].isdigit():
                    if int(fields[4]) > 0:  # (0: a holder outside this pid namespace)
                        return int(fields[4]), None
    except OSError:  # not Linux, or no /proc
        pass
    written = os.pread(fd, 320, 0).decode(errors="replace").split()  # "PID HOST" (an older holder: "PID")
    if not written or not written[0].isdigit():
        return None, None
    return int(written[0]), written[1] if len(written) > 1 else None


def hold(path: Path) -> int:
    """Lock ``path`` (made if need be) for this process: the fd, close it to let go.
    ``Held`` if another open file holds it, in this process or another."""
    try:
        fd, writable = os.open(path, os.O_RDWR | os.O_CREAT, 0o666), True
    except PermissionError:  # another user's (a run as root): an flock needs no write access
        fd, writable = os.open(path, os.O_RDONLY), False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if writable:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise Held(path, *holder) from None
    except OSError as exc:  # a filesystem that has no locks (ENOLCK, EOPNOTSUPP): said bare, it named nothing
        os.close(fd)
        raise OSError(exc.errno, f"{exc.strerror} (the flock that keeps it one node's)", str(path)) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_free(path: Path) -> None:
    """``Held`` if a live process holds ``path``, creating and writing nothing (a question
    asked before a start that would touch what the holder uses).  A lock file that is not
    there, or does not open, is left to the start itself to meet."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise Held(path, *_holder(fd)) from None
    finally:
        os.close(fd)  # (which lets go of the lock if it was had)
