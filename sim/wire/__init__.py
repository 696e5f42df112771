"""The wire between boards and the node: the message format (``protocol``), the sending
side (``source``), how endpoints are opened (``endpoint``) and CURVE keys (``security``).
Both ends speak it, so it lives below both: the board stand-in (``sim.board``) and the
node (``node``) import it, and it imports nothing from either.  NumPy + pyzmq."""
