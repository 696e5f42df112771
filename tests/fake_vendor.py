"""Stand-ins for the Xilinx HLS tools: small shell scripts put on PATH so that
``fpgaflow synth --vendor`` runs its vendor path (conifer's and hls4ml's ``build()``,
their report readers, fpgaflow's report) without a real tool and without compiling.

They write the C synthesis report where the callers read it:

* conifer 1.11 (xilinxhls) runs ``<tool> -f build_hls.tcl > build.log`` in the project
  folder and reads ``<project>/solution1/syn/report/<project>_csynth.xml``;
* hls4ml 1.3 (Vivado) runs ``vivado_hls -f build_prj.tcl "reset=... synth=..."`` in the
  project folder; ``parse_vivado_report`` takes the project name from ``project.tcl``
  and reads ``<project>_prj/vivado_hls.app`` (the solutions) and
  ``<project>_prj/solution1/syn/report/<project>_csynth.xml``.
"""

from __future__ import annotations

from pathlib import Path

# what the stand-in reports: distinct values, so a test can tell each one apart
CSYNTH = {"best": 7, "worst": 9, "ii_min": 1, "ii_max": 2, "LUT": 4321, "FF": 765, "DSP": 3, "BRAM_18K": 2}

_XML = """<?xml version="1.0" encoding="UTF-8"?>
<profile>
  <UserAssignments><TargetClockPeriod>5.00</TargetClockPeriod></UserAssignments>
  <PerformanceEstimates>
    <SummaryOfTimingAnalysis><EstimatedClockPeriod>4.25</EstimatedClockPeriod></SummaryOfTimingAnalysis>
    <SummaryOfOverallLatency>
      <Best-caseLatency>{best}</Best-caseLatency>
      <Worst-caseLatency>{worst}</Worst-caseLatency>
      <Interval-min>{ii_min}</Interval-min>
      <Interval-max>{ii_max}</Interval-max>
    </SummaryOfOverallLatency>
  </PerformanceEstimates>
  <AreaEstimates>
    <Resources><BRAM_18K>{BRAM_18K}</BRAM_18K><DSP>{DSP}</DSP><FF>{FF}</FF><LUT>{LUT}</LUT><URAM>0</URAM></Resources>
    <AvailableResources><BRAM_18K>280</BRAM_18K><DSP>220</DSP><FF>106400</FF><LUT>53200</LUT><URAM>0</URAM>
    </AvailableResources>
  </AreaEstimates>
</profile>
"""

# conifer: the project name is that of the testbench, <project>_test.cpp
CONIFER_SUCCEEDS = """
echo "fake {tool} called with: $*"
[ "$1" = "-f" ] && [ -f "$2" ] || {{ echo "unexpected arguments" >&2; exit 2; }}
set -- *_test.cpp
name=${{1%_test.cpp}}
mkdir -p "$name/solution1/syn/report"
cat > "$name/solution1/syn/report/${{name}}_csynth.xml" <<'XML'
{xml}XML
"""

# hls4ml: the project name is in project.tcl (set project_name "...")
HLS4ML_SUCCEEDS = """
echo "fake {tool} called with: $*"
[ "$1" = "-f" ] && [ -f "$2" ] || {{ echo "unexpected arguments" >&2; exit 2; }}
name=$(sed -n 's/^set project_name "\\(.*\\)"/\\1/p' project.tcl)
[ -n "$name" ] || {{ echo "no project_name in project.tcl" >&2; exit 2; }}
mkdir -p "${{name}}_prj/solution1/syn/report"
cat > "${{name}}_prj/vivado_hls.app" <<'XML'
<project name="prj" top="top"><solutions><solution name="solution1" status="active"/></solutions></project>
XML
cat > "${{name}}_prj/solution1/syn/report/${{name}}_csynth.xml" <<'XML'
{xml}XML
"""

FAILS = """
echo "fake {tool} called with: $*"
echo "ERROR: [HLS 200-70] stand-in failure" >&2
exit 1
"""


def install(tmp_path: Path, monkeypatch, tool: str, body: str) -> Path:
    """Write ``tmp_path/bin/<tool>`` from ``body`` and make PATH that folder + /usr/bin:/bin."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / tool
    script.write_text("#!/bin/sh\n" + body.format(tool=tool, xml=_XML.format(**CSYNTH)))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return script
