"""The layering rules of DESIGN.md, checked on the installed code."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "qkeras", "hls4ml", "conifer")


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return {m.split(".")[0] for m in out.stdout.split()}


def test_runtime_imports_no_front_end():
    mods = _imported_after("import sim, sim.fixed, sim.manifest, node; import fpgaflow.cli")
    assert not mods & set(HEAVY), mods & set(HEAVY)


def test_sim_and_node_sources_never_import_the_front_end_and_sim_never_the_node():
    offenders = []
    for package, forbidden in (("sim", HEAVY + ("fpgaflow", "node")), ("node", HEAVY + ("fpgaflow",))):
        for path in (ROOT / package).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                words = line.strip().split()
                if len(words) >= 2 and words[0] in ("import", "from"):
                    top = words[1].split(".")[0]
                    if top in forbidden:
                        offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, offenders


def test_the_board_stand_in_runs_without_the_node_package():
    """DESIGN.md: sim depends on NumPy (and pyzmq for the board stand-in) only."""
    mods = _imported_after("import sim.board, sim.board.offload, sim.board.cli, sim.wire.source, sim.wire.security")
    assert "node" not in mods and not mods & set(HEAVY), sorted(mods)


def test_cli_help_is_fast_and_lists_commands():
    mods = _imported_after("from fpgaflow.cli import build_parser; build_parser().format_help()")
    assert not mods & set(HEAVY)
    out = subprocess.run([sys.executable, "-m", "fpgaflow.cli", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0
    from fpgaflow.cli import COMMANDS

    for command in COMMANDS:
        assert command in out.stdout
