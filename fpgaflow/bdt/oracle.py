"""conifer's ``cpp`` backend, compiled with g++: the reference the emulator must match bit
for bit.  Compiling takes ~20 s, so the shared object is kept in ``build/cpp`` with a
stamp of what it was built from and reused while the model and types are unchanged."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np

from fpgaflow.bdt.project_writer import conifer_model, working_directory
from fpgaflow.bdt.toolchain import require
from sim.fixed import FixedType

STAMP = "fpgaflow-stamp.json"


class CppOracle:
    """``decision_function`` of conifer's C++ emulation, returning raw score integers."""

    def __init__(self, ensemble: dict[str, Any], types: dict[str, FixedType], directory: Path, name: str = "oracle"):
        if types["input"] != types["threshold"]:
            raise ValueError(
                f"conifer's cpp backend needs InputPrecision == ThresholdPrecision (got {types['input']} and "
                f"{types['threshold']}); it cannot check this firmware"
            )
        self.score_type = types["score"]
        self.directory = Path(directory)
        self.name = name
        config = {
            "Backend": "cpp",
            "ProjectName": name,
            "OutputDir": str(self.directory),
            "InputPrecision": str(types["input"]),
            "ThresholdPrecision": str(types["threshold"]),
            "WeightPrecision": str(types["weight"]),
            "ScorePrecision": str(types["score"]),
        }
        key = hashlib.sha256(json.dumps([ensemble, config], sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.bridge = self._cached(key) or self._compile(ensemble, config, key)

    def _cached(self, key: str) -> Any:
        stamp = self.directory / STAMP
        if not stamp.is_file():
            return None
        info = json.loads(stamp.read_text())
        so = self.directory / info.get("library", "-")
        if info.get("key") != key or not so.is_file():
            return None
        return self._import(so, info["module"])

    def _compile(self, ensemble: dict[str, Any], config: dict[str, Any], key: str) -> Any:
        require("g++")
        (self.directory / STAMP).unlink(missing_ok=True)
        model = conifer_model(ensemble, config, self.directory)
        with working_directory(self.directory):
            for old in Path(".").glob("conifer_bridge_*.so"):
                old.unlink()
            model.compile()
        module = f"conifer_bridge_{model._stamp}"
        (self.directory / STAMP).write_text(json.dumps({"key": key, "library": module + ".so", "module": module}))
        return model.bridge

    def _import(self, so: Path, module: str) -> Any:
        spec = importlib.util.spec_from_file_location(module, so)
        lib = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(lib)
        with working_directory(self.directory):
            return lib.BDT(f"{self.name}.json")

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Scores as doubles, shape (n, outputs), one C++ call per sample as conifer does."""
        rows = [self.bridge.decision_function(row) for row in np.asarray(x, dtype=np.float64)]
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        values = self.decision_function(x)
        raw = np.ldexp(values, self.score_type.frac_bits)
        if not np.all(raw == np.round(raw)):
            raise RuntimeError("conifer's cpp backend returned values off the score type's grid")
        return raw.astype(np.int64)


def cpp_dir(build_dir: Path) -> Path:
    return build_dir / "cpp"


