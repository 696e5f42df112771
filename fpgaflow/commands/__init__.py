"""Subcommands of the ``fpgaflow`` CLI, one module each."""
