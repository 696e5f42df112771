"""Write conifer's firmware project (HLS C++ or VHDL) for a converted ensemble."""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fpgaflow.bdt.config import BDTConfig
from fpgaflow.bdt.toolchain import prepare_conifer_environment
from fpgaflow.folders import claim_build_dir


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """conifer compiles helpers into the current directory: keep them in the build folder."""
    old = Path.cwd()
    path.mkdir(parents=True, exist_ok=True)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def conifer_model(ensemble: dict[str, Any], config: dict[str, Any], workdir: Path) -> Any:
    """A conifer backend model; trees are deep-copied because conifer pads them in place."""
    prepare_conifer_environment()
    import conifer

    vhdl = config.get("Backend") == "vhdl"
    if vhdl:
        from conifer.backends.vhdl import set_simulator, writer

        set_simulator("ghdl")  # skip the probe for Xilinx's xsim
    with working_directory(workdir):
        if not vhdl:
            return conifer.model.make_model(copy.deepcopy(ensemble), dict(config))
        compiled = writer.FixedPointConverter
        writer.FixedPointConverter = RawConverter
        try:
            return conifer.model.make_model(copy.deepcopy(ensemble), dict(config))
        finally:
            writer.FixedPointConverter = compiled


class RawConverter:
    """Stands in for conifer's ``FixedPointConverter`` in the VHDL backend: the same
    ``ap_fixed`` double constructor (``T(x).V``), from ``sim.fixed`` (proven against the
    g++-compiled headers) instead of a pybind11 module compiled per model (~20 s)."""

    def __init__(self, type_string: str):
        from sim.fixed import FixedType

        self.type = FixedType.parse(type_string)
        self.type_string = type_string
        self.width = self.type.width
        self.integer_bits = self.type.int_bits
        self.fractional_bits = self.type.frac_bits
        self.signed = self.type.signed

    def to_int(self, x: float) -> int:
        return int(self.type.to_raw(float(x)))

    def to_double(self, x: float) -> float:
        return float(self.type.quantize(float(x)))

    def from_int(self, x: int) -> float:
        return float(self.type.from_raw(int(x)))


def write_project(ensemble: dict[str, Any], cfg: BDTConfig) -> Any:
    """Write conifer's project into ``build/hls`` (replacing the one an earlier synth
    wrote, never a folder of the user's) and return the model."""
    claim_build_dir(cfg.project.build_dir, str(cfg.project.file), replaced=[cfg.hls_dir.name])
    cfg.hls_dir.mkdir()
    model = conifer_model(ensemble, cfg.conifer, cfg.hls_dir)
    with working_directory(cfg.hls_dir):
        model.write()
    return model
