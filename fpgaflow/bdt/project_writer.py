"""Write conifer's firmware project (HLS C++ or VHDL) for a converted ensemble."""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fpgaflow.bdt.config import BDTConfig
from fpgaflow.bdt.toolchain import prepare_conifer_environment


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

    if config.get("Backend") == "vhdl":
        from conifer.backends.vhdl import set_simulator

        set_simulator("ghdl")  # skip the probe for Xilinx's xsim
    with working_directory(workdir):
        model = conifer.model.make_model(copy.deepcopy(ensemble), dict(config))
        for helper in Path(".").glob(".fp_converter_*"):  # the VHDL backend's compiled converter
            shutil.rmtree(helper, ignore_errors=True)
    return model


def write_project(ensemble: dict[str, Any], cfg: BDTConfig) -> Any:
    """Write conifer's project into ``build/hls`` (replacing an older one) and return the model."""
    if cfg.hls_dir.exists():
        shutil.rmtree(cfg.hls_dir)
    cfg.hls_dir.mkdir(parents=True)
    model = conifer_model(ensemble, cfg.conifer, cfg.hls_dir)
    with working_directory(cfg.hls_dir):
        model.write()
    return model
