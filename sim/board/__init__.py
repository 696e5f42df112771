"""The FPGA board stand-in: a process that runs a project's firmware (the emulator) on
detector data and streams fragments to the node in its wire format, with fault
injection.  NumPy + pyzmq; it speaks the node's protocol through ``node.protocol`` and
``node.source`` (which import nothing from ``sim``, so there is no import cycle)."""

from sim.board.faults import Faults
from sim.board.runtime import Board, BoardConfig, main

__all__ = ["Board", "BoardConfig", "Faults", "main"]
