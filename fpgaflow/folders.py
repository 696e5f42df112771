"""Output folders that a command replaces on its next run, and only when they are its own.

A command that writes a folder leaves a mark file in it; a later run replaces its
earlier outputs only in a folder with that mark (or a new or empty one, or one an
``earlier`` test recognises as written before marks existed).  Any other folder is the
user's and is refused, not emptied: ``demo --out .`` in the repository removed the
``node`` package's source, and ``synth`` with ``OutputDir: mywork`` removed
``mywork/hls`` with whatever the user kept there."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

SYNTH_MARK = ".fpgaflow-synth"  # in OutputDir: a folder `fpgaflow synth` wrote


class ForeignFolderError(ValueError):
    """A folder that is not empty and was not written by the command about to replace it."""


def owned(folder: Path, mark: str, earlier: Callable[[Path], bool] | None = None) -> bool:
    """Whether a run may replace outputs in ``folder``: it does not exist yet, is empty,
    carries ``mark``, or ``earlier`` recognises it.  A file where the folder should be is
    refused."""
    if not folder.exists():
        return not folder.is_symlink()  # a dangling link points somewhere unknown
    if not folder.is_dir():
        raise ForeignFolderError(f"{folder} is a file, not a folder")
    return (folder / mark).is_file() or (earlier is not None and earlier(folder)) or not any(folder.iterdir())


def remove_outputs(folder: Path, outputs: Iterable[str]) -> None:
    """Remove the named entries of an owned ``folder`` (files, links, folders)."""
    for name in outputs:
        target = folder / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def mark_folder(folder: Path, mark: str, note: str) -> None:
    """Create ``folder`` if needed and mark it as the command's own."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / mark).write_text(note)


def refuse_foreign_build_dir(build: Path, where: str) -> None:
    """Refuse ``build`` (a project's ``OutputDir``) unless synth may write there: a folder
    of anything else that is not empty, naming it and some of what it holds."""
    if build.exists() and not build.is_dir():
        raise ForeignFolderError(f"{where}: OutputDir {build} is a file, not a folder")
    if not owned(build, SYNTH_MARK, _earlier_synth):
        held = sorted(p.name + ("/" if p.is_dir() else "") for p in build.iterdir())
        shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise ForeignFolderError(
            f"{where}: OutputDir {build} is not empty (it holds {shown}) and was not written by fpgaflow synth, "
            "which replaces what it wrote there: give a new or empty folder"
        )


def claim_build_dir(build: Path, where: str, replaced: Iterable[str]) -> None:
    """Make ``build`` synth's (``refuse_foreign_build_dir``), remove the ``replaced``
    outputs of an earlier synth and leave the mark.  For network and BDT projects alike."""
    refuse_foreign_build_dir(build, where)
    remove_outputs(build, replaced)
    mark_folder(build, SYNTH_MARK, "outputs of fpgaflow synth: a new synth replaces them\n")


def _earlier_synth(build: Path) -> bool:
    """A build folder synth wrote before the mark existed: it holds synth's manifest."""
    from sim.manifest import FORMAT, MANIFEST_FILE

    try:
        meta = json.loads((build / "emulator" / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT
