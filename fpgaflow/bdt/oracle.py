"""The references the emulator must match bit for bit, compiled with g++:

- conifer's ``cpp`` backend (``conifer.h``): its compiled bridge depends only on the
  types, and loads any model's JSON at run time, so one build (~20 s) serves every
  model with the same precisions; it is cached under ``~/.cache/fpgaflow`` (or
  ``$FPGAFLOW_CACHE``), keyed by the types and conifer's sources;
- the HLS firmware itself (conifer's ``xilinxhls`` bridge: ``BDT.h`` + the generated
  ``parameters.h``), needed where the order of the sum matters (saturating score
  types): conifer's C++ adds tree by tree, the unrolled firmware in a balanced tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fpgaflow.bdt.project_writer import conifer_model, working_directory
from fpgaflow.bdt.toolchain import prepare_conifer_environment, require
from sim.fixed import FixedType

STAMP = "fpgaflow-stamp.json"
_loaded: dict[str, Any] = {}  # a compiled module is imported once per process


def cache_root() -> Path:
    if os.environ.get("FPGAFLOW_CACHE"):
        return Path(os.environ["FPGAFLOW_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fpgaflow"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One compiler per cache entry, also across pytest-xdist workers."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _import(so: Path, module: str) -> Any:
    key = str(so.resolve())
    if key not in _loaded:
        spec = importlib.util.spec_from_file_location(module, so)
        lib = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(lib)
        _loaded[key] = lib
    return _loaded[key]


def _cached_build(directory: Path, key: str) -> Any:
    stamp = directory / STAMP
    if not stamp.is_file():
        return None
    info = json.loads(stamp.read_text())
    so = directory / info.get("library", "-")
    if info.get("key") != key or not so.is_file():
        return None
    return _import(so, info["module"])


def _build(model: Any, directory: Path, key: str) -> Any:
    """``model.compile()`` (conifer's own g++ command) in ``directory``, then stamp it."""
    require("g++")
    (directory / STAMP).unlink(missing_ok=True)
    with working_directory(directory):
        for old in Path(".").glob("conifer_bridge_*.so"):
            old.unlink()
        try:
            model.compile()
        except Exception as exc:  # conifer raises a bare Exception on compiler errors
            raise RuntimeError(f"conifer could not compile its C++ in {directory}: {exc}") from None
    module = f"conifer_bridge_{model._stamp}"
    (directory / STAMP).write_text(json.dumps({"key": key, "library": module + ".so", "module": module}))
    return _import(directory / f"{module}.so", module)


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _conifer_sources() -> str:
    import conifer

    root = Path(conifer.__file__).parent / "backends"
    files = ["cpp/include/conifer.h", "cpp/template/bridge.cpp", "xilinxhls/firmware/BDT_unrolled.h"]
    return _digest(str(conifer.__version__), *[(root / f).read_text() for f in files])


def _types_config(types: dict[str, FixedType]) -> dict[str, str]:
    return {
        "InputPrecision": str(types["input"]),
        "ThresholdPrecision": str(types["threshold"]),
        "WeightPrecision": str(types["weight"]),
        "ScorePrecision": str(types["score"]),
    }


def _raw(values: np.ndarray, score_type: FixedType, who: str) -> np.ndarray:
    raw = np.ldexp(values, score_type.frac_bits)
    if not np.all(raw == np.round(raw)):
        raise RuntimeError(f"{who} returned values off the grid of {score_type}")
    return raw.astype(np.int64)


class CppOracle:
    """``decision_function`` of conifer's C++ emulation (one C++ call per sample, as
    conifer does), as raw score integers."""

    def __init__(self, ensemble: dict[str, Any], types: dict[str, FixedType], model_dir: Path):
        if types["input"] != types["threshold"]:
            raise ValueError(
                f"conifer's cpp backend needs InputPrecision == ThresholdPrecision (got {types['input']} and "
                f"{types['threshold']}); it cannot check this firmware"
            )
        prepare_conifer_environment()
        self.score_type = types["score"]
        config = {"Backend": "cpp", "ProjectName": "bridge", **_types_config(types)}
        key = _digest(_conifer_sources(), config)
        build = cache_root() / "conifer-cpp" / key
        with _locked(build):
            lib = _cached_build(build, key)
            if lib is None:
                lib = _build(conifer_model(ensemble, {**config, "OutputDir": str(build)}, build), build, key)
        model_dir = Path(model_dir)
        model = conifer_model(ensemble, {**config, "ProjectName": "model", "OutputDir": str(model_dir)}, model_dir)
        model_json = model_dir / "model.json"
        model.save(str(model_json))
        self.bridge = lib.BDT(str(model_json))
        self.build_dir = build

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        rows = [self.bridge.decision_function(row) for row in np.asarray(x, dtype=np.float64)]
        values = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        return _raw(values, self.score_type, "conifer's cpp backend")


class HlsOracle:
    """conifer's HLS firmware compiled by g++ (its ``xilinxhls`` bridge): the firmware's
        own C++, including its balanced sum; built per model (minutes for 100 trees), cached
    like the cpp bridge."""

    def __init__(self, ensemble: dict[str, Any], config: dict[str, Any], score_type: FixedType):
        prepare_conifer_environment()
        self.score_type = score_type
        config = {k: v for k, v in config.items() if k != "OutputDir"}
        config.update(Backend="xilinxhls", ProjectName="csim")
        key = _digest(_conifer_sources(), config, ensemble)
        directory = cache_root() / "conifer-hls" / key
        config["OutputDir"] = str(directory)
        with _locked(directory):
            lib = _cached_build(directory, key)
            if lib is None:
                lib = _build(conifer_model(ensemble, config, directory), directory, key)
        self.bridge = lib

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        rows = [self.bridge.decision_function(row) for row in np.asarray(x, dtype=np.float64)]
        values = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        return _raw(values, self.score_type, "the HLS C simulation")
