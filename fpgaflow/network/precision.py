"""Weights their type cannot hold: the firmware keeps them wrapped or saturated
(or, with a type coarser than the weights, mostly zero), and says nothing."""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.fixed import FixedType


def weight_checks(hls_model: Any) -> list[dict[str, Any]]:
    """Per layer and weight variable (weight, bias, BatchNorm scale...) whose type loses
    values: how many lie outside the type's range (the cast error is a step or more),
    and how many non-zero values the type's step takes to nothing or past zero.

    The values are hls4ml's (after its quantizers and folding), cast as the emulator
    casts the weights header."""
    from fpgaflow.network.types import UnsupportedType, ap_type

    rows = []
    for layer in hls_model.get_layers():
        for name, var in getattr(layer, "weights", {}).items():
            precision = var.type.precision
            if type(precision).__name__ == "XnorPrecisionType":  # binary weights: -1/+1 stored as 0/1
                continue
            try:
                t = FixedType.parse(ap_type(precision, f"layer {layer.name!r} {name}"))
            except UnsupportedType:  # power-of-two weights: not a fixed-point cast
                continue
            values = np.asarray(var.data, dtype=np.float64).ravel()
            if not values.size:
                continue
            held = t.from_raw(t.to_raw(values)).astype(np.float64)
            error = np.abs(held - values)
            outside = error >= t.lsb  # rounding alone is less than one step
            lost = (values != 0) & ~outside & (error >= np.abs(values))  # no better than zero
            nonzero = int(np.count_nonzero(values))
            if outside.any() or (nonzero and 2 * int(lost.sum()) > nonzero):
                rows.append(
                    {
                        "layer": layer.name,
                        "variable": name,
                        "type": str(t),
                        "range": [t.min_value, t.max_value],
                        "step": t.lsb,
                        "values": int(values.size),
                        "outside_range": int(outside.sum()),
                        "largest_magnitude": float(np.max(np.abs(values))),
                        "saturating": t.overflow != "AP_WRAP",
                        "nonzero": nonzero,
                        "lost_to_step": int(lost.sum()),
                    }
                )
    return rows


def unapplied_weight_types(hls_model: Any, hls_config: dict[str, Any]) -> list[str]:
    """A ``HLSConfig.LayerName`` weight type (weight, bias...) hls4ml did not build with:
    a QKeras layer's quantizer sets its weights' types and hls4ml keeps them over the
    entry, which was then ignored without a word (``fc1: {Precision: {weight:
    ap_fixed<10,2>}}`` on a ``quantized_bits(6,0)`` kernel built ``fixed<6,1>``)."""
    from fpgaflow.network.types import UnsupportedType, ap_type

    names = hls_config.get("LayerName") or {}
    notes = []
    for layer in hls_model.get_layers():
        precision = (names.get(layer.name) or {}).get("Precision")
        if precision is None:
            continue
        for var, weights in getattr(layer, "weights", {}).items():
            asked = precision if isinstance(precision, str) else (precision.get(var) or precision.get("default"))
            if not isinstance(asked, str) or asked == "auto":
                continue
            try:
                built = ap_type(weights.type.precision, f"layer {layer.name!r} {var}")
                if FixedType.parse(asked) == FixedType.parse(built):
                    continue
            except (UnsupportedType, ValueError):  # binary/power-of-two weights: not the type asked for either
                built = str(weights.type.precision)
            notes.append(
                f"HLSConfig.LayerName.{layer.name}.Precision asks for {var} {asked}, but hls4ml built it as "
                f"{built}: the layer's QKeras quantizer sets its weights' types (change the quantizer and retrain)"
            )
    return notes


def weight_warnings(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        where = f"layer {r['layer']!r}: {r['variable']} type {r['type']}"
        if r["outside_range"]:
            out.append(
                f"{where}: {r['outside_range']} of {r['values']} values lie outside its range "
                f"[{r['range'][0]:g}, {r['range'][1]:g}] (largest |value| {r['largest_magnitude']:.4g}) and "
                f"{'saturate' if r['saturating'] else 'wrap'} in the firmware; give it more integer bits"
            )
        if 2 * r["lost_to_step"] > r["nonzero"]:
            out.append(
                f"{where}: {r['lost_to_step']} of {r['nonzero']} non-zero values become 0 or cross zero "
                f"(its step is {r['step']:g}); give it more fractional bits"
            )
    return out


LEGACY_SOFTMAX_TABLE = "ap_fixed<18,8>"  # nnet_activation.h: nnet::activ_config::table_t


LEGACY_TABLE_VARS = ("table", "exp_table", "inv_table")


def unapplied_softmax_table_types(hls_model: Any, user: dict[str, Any] | None = None) -> list[str]:
    """A legacy softmax's ``table``, ``exp_table`` and ``inv_table`` types: hls4ml 1.3
    does not give a Softmax layer the configured ``table`` precision, and
    ``softmax_legacy`` (io_parallel and io_stream) declares both tables and the exp
    results as ``CONFIG_T::table_t``, which its config struct lacks, so it reads
    ``nnet::activ_config::table_t`` (ap_fixed<18,8>) whatever ``Precision`` says; the
    ``exp_table_t``/``inv_table_t`` the struct has are for the latency and stable
    kernels.  ``exp_table``/``inv_table`` count where the user's HLSConfig (``user``)
    sets them: hls4ml's own default for them is not ap_fixed<18,8> either."""
    names = hls_model.config.config.get("HLSConfig", {}).get("LayerName") or {}
    notes = []
    for layer in hls_model.get_layers():
        if layer.class_name != "Softmax" or str(layer.get_attr("implementation", "")).lower() != "legacy":
            continue
        precision = (names.get(layer.name) or {}).get("Precision")
        given = _user_sets(user or {}, layer.name)
        unapplied = []
        for var in LEGACY_TABLE_VARS:
            asked = precision if isinstance(precision, str) else (precision or {}).get(var)
            if not isinstance(asked, str) or asked == "auto" or (var != "table" and var not in given):
                continue
            try:
                if FixedType.parse(asked) == FixedType.parse(LEGACY_SOFTMAX_TABLE):
                    continue
                asked = str(FixedType.parse(asked))
            except ValueError:  # hls4ml's own spelling of a type
                pass
            unapplied.append(f"{var} type {asked}")
        if not unapplied:
            continue
        listed = unapplied[0] if len(unapplied) == 1 else f"{', '.join(unapplied[:-1])} and {unapplied[-1]}"
        notes.append(
            f"layer {layer.name!r} (Softmax, Implementation legacy): its {listed} "
            f"{'is' if len(unapplied) == 1 else 'are'} not applied: hls4ml's softmax config has no table_t, so the "
            f"firmware's exp and inverse tables are nnet::activ_config::table_t, {LEGACY_SOFTMAX_TABLE} "
            "(Implementation latency or stable apply exp_table_t and inv_table_t)"
        )
    return notes


def _user_sets(user: dict[str, Any], layer: str) -> set[str]:
    """The legacy table variables the user's HLSConfig sets for a softmax layer (its
    LayerName entry, a Softmax/Activation LayerType entry, a Model.Precision variable)."""
    found: set[str] = set()
    entries = [((user.get("LayerName") or {}).get(layer) or {})]
    entries += [(user.get("LayerType") or {}).get(cls) or {} for cls in ("Softmax", "Activation")]
    for entry in entries:
        precision = (
            next((v for k, v in entry.items() if k.lower() == "precision"), None) if isinstance(entry, dict) else None
        )
        if isinstance(precision, str) or (isinstance(precision, dict) and "default" in precision):
            found.update(LEGACY_TABLE_VARS)
        elif isinstance(precision, dict):
            found.update(v for v in LEGACY_TABLE_VARS if v in precision)
    model = (user.get("Model") or {}).get("Precision")
    if isinstance(model, dict):
        found.update(v for v in LEGACY_TABLE_VARS if v in model)
    return found
