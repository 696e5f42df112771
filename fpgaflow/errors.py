"""The error the ``fpgaflow`` command prints as one line.

Its own module, not ``fpgaflow.cli``: under ``python -m fpgaflow.cli`` that module is
``__main__``, and a subclass defined against ``fpgaflow.cli.UserError`` (a second copy
of the module, imported by name) was not caught there and ended in a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: printed as one clear line, exit status 2.

    ``FPGAFLOW_DEBUG=1`` shows the traceback instead."""
