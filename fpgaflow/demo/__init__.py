"""``fpgaflow demo``, the main job: firmware built and verified, board stand-ins streaming
through nodes with injected faults, every event accounted for (see docs/demo.md)."""
