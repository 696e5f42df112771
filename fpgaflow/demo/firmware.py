"""The demo's first stage: every example project synthesized and verified against its C
simulation, reusing earlier results when nothing they depend on changed.

``fpgaflow synth`` and ``fpgaflow verify`` run as subprocesses (TensorFlow, hls4ml and
conifer stay out of the demo's own process, and the two projects build side by side on
two cores).  A stamp in the project's build folder records the hash of the project file
and every model file it names, the manifest id and the verification verdict; a second
run with the same hash and an intact manifest skips both steps.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpgaflow import __version__

STAMP = "demo-stamp.json"
MODEL_KEYS = ("KerasJson", "KerasH5", "KerasModel", "XGBoostModel", "SklearnModel", "ConiferModel")


@dataclass
class Firmware:
    """One example project, ready to run on the boards."""

    name: str
    kind: str
    project_dir: Path
    manifest_dir: Path
    manifest_id: str = ""
    verified: bool = False
    reused: bool = False
    verify: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    log: Path | None = None
    error: str = ""


def example_projects(root: Path) -> list[Path]:
    """Every folder under ``firmware_projects/`` that holds a project file."""
    from fpgaflow.project import PROJECT_FILE_NAMES

    return sorted(p for p in root.iterdir() if p.is_dir() and any((p / n).is_file() for n in PROJECT_FILE_NAMES))


def inputs_hash(project) -> str:
    """What synth and verify depend on: the project file, the model files, the input
    scaling synth exports (the ``Preprocessing`` file, or the default ``scaling.json``
    of a project with a ``Data`` block), the version."""
    from fpgaflow.data.scaling import scaling_file

    h = hashlib.sha256(f"fpgaflow {__version__}\n".encode())
    h.update(project.file.read_bytes())
    for key in MODEL_KEYS:
        value = project.config.get(key)
        if isinstance(value, str) and project.resolve(value).is_file():
            h.update(f"{key}\n".encode())
            h.update(project.resolve(value).read_bytes())
    scaling = scaling_file(project)
    if scaling is not None and scaling.is_file():
        h.update(b"scaling\n")
        h.update(scaling.read_bytes())
    return h.hexdigest()


def _fpgaflow(*args: str, log: Path, stdout: Path) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    with open(log, "ab") as err, open(stdout, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "fpgaflow.cli", *args], stdout=out, stderr=err, env=env)


class _Job:
    """synth then verify of one project, as a chain of subprocesses."""

    def __init__(self, fw: Firmware, project, stamp: dict, verify_samples: int, logs: Path, say):
        self.fw, self.project, self.stamp = fw, project, stamp
        self.verify_samples = verify_samples
        self.say = say
        self.log = logs / f"{fw.name}.log"
        self.log.write_text("")
        fw.log = self.log
        self.start = time.monotonic()
        self.step = "synth"
        say(f"{fw.name}: synthesizing ({fw.kind}; log {self.log})")
        self.stdout = logs / f"{fw.name}.stdout"
        self.proc = _fpgaflow("synth", str(project.file), log=self.log, stdout=self.stdout)

    def poll(self) -> bool:
        """Advance; True when done."""
        if self.proc.poll() is None:
            return False
        out = self.stdout.read_text(errors="replace")
        code = self.proc.returncode
        fw = self.fw
        if self.step == "synth":
            if code != 0:
                fw.error = f"synth failed (exit {code}): {_last_error(self.log)}"
                return True
            import sim

            fw.manifest_id = sim.load(fw.manifest_dir).id
            self.step = "verify"
            self.say(f"{fw.name}: manifest {fw.manifest_id}; verifying against the C simulation")
            args = ["verify", str(self.project.file), "--json", "--samples", str(self.verify_samples)]
            self.proc = _fpgaflow(*args, log=self.log, stdout=self.stdout)
            return False
        try:
            fw.verify = json.loads(out) if out.strip() else {}
        except ValueError:
            fw.verify = {"output": out[-2000:]}
        fw.verified = code == 0
        fw.seconds = time.monotonic() - self.start
        if not fw.verified:
            fw.error = f"verify failed (exit {code}): {_last_error(self.log)}"
            return True
        (self.project.build_dir / STAMP).write_text(json.dumps(
            {"inputs": self.stamp["inputs"], "manifest_id": fw.manifest_id, "verified": True, "verify": fw.verify},
            indent=1))  # fmt: skip
        return True


def _last_error(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["(no output)"])[-1][:400]


def prepare(project_dirs: list[Path], *, out: Path, rebuild: bool, verify_samples: int, say) -> list[Firmware]:
    """Synthesize and verify every project (two at a time), or reuse what is up to date."""
    import sim
    from fpgaflow.project import load_project

    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    firmware, waiting = [], []
    for d in project_dirs:
        project = load_project(d)
        fw = Firmware(project.name, project.kind, project.root, project.build_dir / "emulator")
        firmware.append(fw)
        stamp = {"inputs": inputs_hash(project)}
        old = _read_json(project.build_dir / STAMP)
        if not rebuild and old.get("inputs") == stamp["inputs"] and old.get("verified"):
            try:
                if sim.load(fw.manifest_dir).id == old.get("manifest_id"):
                    fw.manifest_id, fw.verified, fw.reused, fw.verify = old["manifest_id"], True, True, old["verify"]
                    say(f"{fw.name}: up to date (manifest {fw.manifest_id}, verified); reusing it")
                    continue
            except (OSError, ValueError):
                pass
        waiting.append((fw, project, stamp))
    running: list[_Job] = []
    while waiting or running:
        while waiting and len(running) < 2:
            fw, project, stamp = waiting.pop(0)
            running.append(_Job(fw, project, stamp, verify_samples, logs, say))
        time.sleep(0.2)
        for job in [j for j in running if j.poll()]:
            running.remove(job)
            fw = job.fw
            if fw.error:
                say(f"{fw.name}: {fw.error}")
            else:
                say(f"{fw.name}: verified bit-exact against the C simulation in {fw.seconds:.0f} s")
    return firmware


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
