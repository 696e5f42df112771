"""A supervisor's worker that outlives its supervisor (killed) stops in order.

Running, the worker's loop compares ``os.getppid()`` with its supervisor's pid every
status interval.  Starting, it runs no loop, and a step can take long (imports, a ring of
GBs touched, a killed writer's files rebuilt) or block for ever (a file on a mount that
hangs, a FIFO where a file should be): such a worker lived on as an orphan, holding its
ports and files.  So on Linux the kernel tells it: ``PR_SET_PDEATHSIG`` sends ``SIGHUP``
when the supervisor dies, and while the worker starts the handler raises
``SupervisorGone`` out of whatever step it is in (a blocked ``open`` included: Python
runs the handler when the call is interrupted).

Not ``SIGTERM``: a worker takes that as a stop from ``systemctl stop``, acted on once it
runs (a handler that only notes it cannot end a step that blocks), and a stop it was told
of would not say ``supervisor-gone``.  Not ``SIGKILL``: the worker would leave without a
word, and once its inputs are bound, with what ZeroMQ had taken in for it.  A ``SIGHUP``
while the supervisor lives is ignored (a terminal's hangup kills the supervisor, and its
workers then stop in order).

The handler is installed before the kernel is asked, and the supervisor is looked for
after it, so a supervisor that died before (while the worker's interpreter started) is
found too.  The kernel signals when the thread that started the worker ends: the
supervisor starts its workers from its main thread, and the handler checks the parent
all the same.  Elsewhere than Linux the worker finds out once it runs, as before; and a
step the kernel holds beyond any signal's reach (an uninterruptible wait on a hard NFS
mount) ends only with it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)
SIGNAL = signal.SIGHUP
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = tuple(os.path.join(ROOT, package) + os.sep for package in ("node", "sim"))


class SupervisorGone(BaseException):
    """Raised in a starting worker whose supervisor died.  Not an ``Exception``: a step's
    ``except Exception`` (a rebuild's, turning its error into the file's) must let it by."""

    def __init__(self, pid: int, during: str):
        super().__init__(f"supervisor {pid} is gone (while {during})")
        self.pid, self.during = pid, during


class SupervisorWatch:
    """Watch for the death of the supervisor ``pid`` (the worker's parent)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.raising = False  # raise SupervisorGone when the supervisor dies (the worker starts)
        # the kernel's signal came (running: the loop looks at once, not at its next status
        # interval, while the worker held its ports and files, and a new node was refused)
        self.signalled = False

    def gone(self) -> bool:
        """The supervisor has died: the worker has another parent now (init, a subreaper)."""
        return os.getppid() != self.pid

    def start(self) -> None:
        """From now on a dying supervisor raises ``SupervisorGone`` (until ``raising`` is
        turned off); raised at once if it is gone already."""
        signal.signal(SIGNAL, self._signalled)  # first: the kernel's signal must never find the default (death)
        _parent_death_signal(SIGNAL)
        self.raising = True
        self.check("the start of its interpreter (imports, the configuration)")

    def check(self, during: str) -> None:
        """Raise ``SupervisorGone`` if raising and the supervisor is gone (once)."""
        if self.raising and self.gone():
            self.raising = False
            raise SupervisorGone(self.pid, during)

    @contextmanager
    def interrupting(self, step: str) -> Iterator[None]:
        """Raise ``SupervisorGone`` out of ``step`` (one that may block, within) if the
        supervisor is gone or dies meanwhile."""
        self.raising = True
        try:
            self.check(step)
            yield
        finally:
            self.raising = False

    def _signalled(self, _signum: int, frame: FrameType | None) -> None:
        self.signalled = True
        self.check(_where(frame))


def _where(frame: FrameType | None) -> str:
    """The step a signal interrupted: ``path:line function`` of the innermost frame of the
    node's own code (``sim``, ``node``) it came in (below it: the library it waited in)."""
    f = frame
    while f is not None and not f.f_code.co_filename.startswith(PACKAGES):
        f = f.f_back
    f = f or frame
    if f is None:
        return "starting"
    return f"{os.path.relpath(f.f_code.co_filename, ROOT)}:{f.f_lineno} {f.f_code.co_name}"


def _parent_death_signal(signum: int) -> None:
    """Ask Linux for ``signum`` when this process's parent dies (elsewhere: nothing)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
