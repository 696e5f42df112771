"""The demo's summary as a human reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e3:.2f} ms"


def print_summary(s: dict[str, Any], out: Path) -> None:
    lines = ["", "fpgaflow demo: summary"]
    for fw in s["firmware"]:
        state = "verified bit-exact" if fw["verified"] else f"FAILED: {fw['error']}"
        lines.append(f"  firmware {fw['name']:<14} {fw['kind']:<8} manifest {fw['manifest_id'] or '-':<17} "
                     f"{state}{' (reused)' if fw['reused'] else ''}")  # fmt: skip
    lines += [
        f"  events generated          {s['generated']:>12,}",
        f"  built complete            {s['built_complete']:>12,}",
        f"  built incomplete          {s['built_incomplete']:>12,}",
    ]
    reasons = s["incomplete_reasons"]  # why they left (each event once), then what they lacked (per source)
    for reason in sorted(r for r in reasons if not r.startswith("missing")):
        lines.append(f"    {'left ' + reason.replace('_', ' '):<24}{reasons[reason]:>12,}")
    for reason in sorted(r for r in reasons if r.startswith("missing")):
        lines.append(f"    {reason.replace('missing', 'lacking'):<24}{reasons[reason]:>12,}")
    lines += [
        f"  built twice               {s['built_twice']:>12,}",
        f"  fallback runs (events)    {s['fallback']:>12,}   (CPU result for a missing/flagged FPGA result; "
        f"{s['fallback_wrong']} differ from the firmware)",
        f"  validation sample         {s['validated']:>12,}",
        f"  faults injected           {s['faults_injected']:>12,}   (detectable {s['faults_detectable']:,}, "
        f"detected {s['faults_detected']:,})",
        "    kind                    injected / detected",
    ]
    for kind, k in s["faults_by_kind"].items():
        lines.append(f"    {kind:<24}{k['injected']:>6,} / {k['detected']:<6,}")
    if s["bitflips_outside_validation_sample"]:
        lines.append(f"    ({s['bitflips_outside_validation_sample']} bit flips fell outside the 1-in-100 validation "
                     "sample: silent by nature)")  # fmt: skip
    if s.get("delays_absorbed"):
        lines.append(f"    ({s['delays_absorbed']} delayed fragments still came within the build timeout: absorbed)")
    lat = s["latency_s"]
    rate = s["events_per_s"]
    lines += [
        f"  late fragments            {s['late_fragments']:>12,}",
        f"  LOST                      {s['lost']:>12,}",
        f"  built events/s            {'-':>12}   (too few events to time)"
        if rate is None
        else f"  built events/s            {rate:>12,.0f}   "
        f"(over {s.get('stream_seconds', 0):.1f} s: first fragment stamped -> last complete event out)",
        f"  latency p50 / p99 / max   {_ms(lat['p50'])} / {_ms(lat['p99'])} / {_ms(lat['max'])}",
        f"  time: firmware {s['seconds'].get('firmware', 0)} s, streaming {s['seconds'].get('stream', '-')} s, "
        f"total {s['seconds'].get('total', '-')} s",
        f"  outputs: {out}/summary.json, {out}/demo.png, built events in {out}/node/events/",
    ]
    lines.append("  RESULT: OK" if s["ok"] else "  RESULT: FAILED — " + "; ".join(s["problems"]))
    print("\n".join(lines))
