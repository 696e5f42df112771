"""node.heap: with glibc's thresholds raised, freed blocks of the sizes the node hands on
(event blocks of 64 KB to 3 MB, a few in flight) are reused instead of faulted in anew,
and the heap is faulted in once at start-up rather than during the first second of data."""

from __future__ import annotations

import subprocess
import sys

from node_helpers import ROOT

ALLOCATE = """
import resource, sys
import numpy as np
from node import heap
if sys.argv[1] == "keep":
    assert heap.keep_freed_memory()
rng = np.random.default_rng(0)
alive, pages = [], 0
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(300):
    n = int(rng.integers(64 << 10, 3 << 20))
    block = np.empty(n, np.uint8)
    block[:] = 1
    pages += n // 4096
    alive.append(block)
    if len(alive) > 3:
        alive.pop(0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0, pages)
"""


def page_faults(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", ALLOCATE, mode], cwd=ROOT, capture_output=True, text=True, check=True)
    faults, pages = out.stdout.split()
    return int(faults), int(pages)


def test_freed_blocks_are_reused_without_page_faults():
    kept, pages = page_faults("keep")
    default, _ = page_faults("default")
    # the heap was grown (and touched) up front: not even its growth to the blocks'
    # high-water mark faults
    assert kept < pages // 1000, (kept, pages)
    # and glibc's own adaptive policy, which the node ran with before, faults far more
    assert default > 4 * kept, (default, kept)
