"""Layers hls4ml inserts only in io_stream: ``Clone`` where an output feeds several
layers, ``Repack`` where a Reshape changes the stream's packing (values unchanged,
so it is exported as a reshape)."""

from __future__ import annotations

from fpgaflow.network.exporters import exporter


@exporter("Clone")
def export_clone(layer, ctx) -> dict:
    return {"kind": "clone"}


@exporter("Repack")
def export_repack(layer, ctx) -> dict:
    return {"kind": "reshape"}
