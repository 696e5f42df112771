"""The node daemon: receive FPGA streams over ZeroMQ, build events, CPU fallback, sinks."""
