"""The FPGA board stand-in: a process that runs a project's firmware (the emulator) on
detector data and streams fragments to the node in its wire format, with fault
injection.  NumPy + pyzmq; it speaks the wire format of ``sim.wire``, as the node does,
and imports nothing from ``node`` (DESIGN.md: sim sits below the node)."""

from sim.board.faults import Faults
from sim.board.runtime import Board, BoardConfig, main

__all__ = ["Board", "BoardConfig", "Faults", "main"]
