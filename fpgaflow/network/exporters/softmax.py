"""Softmax in every implementation; table sizes and types as the config struct has them."""

from __future__ import annotations

from fpgaflow.network import hls4ml_version
from fpgaflow.network.exporters import config_constants, exporter
from fpgaflow.network.types import layer_type

IMPLEMENTATIONS = ("latency", "stable", "legacy", "argmax")
# an exp-table entry serving inputs a whole unit wide or more: inputs that far apart (a factor
# e in exp) read one entry, so close logits get equal shares (see coarse_exp_table)
COARSE_STEP = 1.0


@exporter("Softmax", keras=("Softmax",))
def export_softmax(layer, ctx) -> dict:
    from sim.fixed import FixedType

    impl = str(layer.get_attr("implementation", "stable")).lower()
    if impl not in IMPLEMENTATIONS:
        raise ValueError(
            f"layer {layer.name!r} (Softmax): implementation {impl!r} is not supported "
            f"(supported: {', '.join(IMPLEMENTATIONS)})"
        )
    if layer.get_attr("skip", False):
        raise ValueError(f"layer {layer.name!r} (Softmax): 'Skip: true' (softmax removed) is not supported")
    consts = config_constants(layer)
    spec: dict = {
        "kind": "softmax",
        "implementation": impl,
        "n_outer": int(consts.get("n_outer", 1)),
        "n_slice": int(consts.get("n_slice", layer.get_attr("n_in"))),
        "n_inner": int(consts.get("n_inner", 1)),
        "stream": ctx.io_type == "io_stream",
    }
    shape = [int(d) for d in layer.get_input_variable().shape]
    if not spec["stream"] and spec["n_outer"] * spec["n_inner"] == 1 and spec["n_slice"] > shape[-1]:
        ctx.warnings.append(
            f"layer {layer.name!r} (Softmax, {impl}) on a {len(shape)}-D tensor {tuple(shape)} in io_parallel: "
            f"hls4ml {hls4ml_version()} builds one softmax normalising over all {spec['n_slice']} values, not "
            f"one per row of {shape[-1]} (the last axis) as Keras does; the emulator reproduces the firmware "
            "(io_stream normalises each row)"
        )
    if spec["stream"]:
        # the stream kernels normalise each stream word: data_T::size = n_elem * n_pack values
        t = layer.get_input_variable().type
        spec["stream_word"] = int(getattr(t, "n_elem", layer.get_input_variable().shape[-1])) * int(
            getattr(t, "n_pack", 1)
        )
    if impl == "argmax":
        return spec
    spec["exp_table_size"] = int(consts["exp_table_size"])
    spec["inv_table_size"] = int(consts["inv_table_size"])
    if impl == "legacy":
        spec["table_type"] = layer_type(layer, "table_t")
        if spec["stream"]:
            # the stream kernel's CONFIG_T::table_size: not in the struct, so nnet::activ_config's
            spec["table_size"] = int(consts.get("table_size", 1024))
        return spec
    spec["exp_scale"] = float(consts.get("exp_scale", "1.0").rstrip("f"))
    for key in ("exp_table", "inv_table", "accum", "inv_inp"):
        spec[f"{key}_type"] = layer_type(layer, f"{key}_t")
    if impl == "stable":
        text = consts["inp_norm_t"]
        named = {t.name: t for t in layer.types.values()}
        if text in named:
            from fpgaflow.network.types import ap_type

            spec["inp_norm_type"] = ap_type(named[text].precision, f"layer {layer.name!r} inp_norm_t")
        else:
            spec["inp_norm_type"] = str(FixedType.parse(text))
    note = coarse_exp_table(layer, spec)
    if note:
        ctx.warnings.append(note)
    return spec


def coarse_exp_table(layer, spec: dict) -> str | None:
    """A latency/stable softmax whose exp table cannot tell close inputs apart.  Its index
    is the top ceil(log2(exp_table_size)) bits of the input word (latency: the input type;
    stable: ``x_max - x`` in inp_norm_t, which hls4ml derives from the input type), so an
    entry serves an interval 2**(integer bits - index bits) wide.  On a wide automatic input
    type (a plain Keras Dense's accumulator, ap_fixed<38,18>) that is 128: every logit
    within 128 of the largest reads exp(0), and the firmware gives every class the same
    share where the model separates them -- bit-exact with csim, and wrong.  Said at synth,
    naming the layer that sets the type."""
    from fpgaflow.network.types import ap_type
    from sim.fixed import FixedType
    from sim.network.layers.softmax import ceillog2, value_of_index

    if spec["implementation"] == "stable":
        t = FixedType.parse(spec["inp_norm_type"])
    else:
        t = FixedType.parse(ap_type(layer.get_input_variable().type.precision, f"layer {layer.name!r} input"))
    bits = ceillog2(spec["exp_table_size"])
    # the input the second entry stands for, as the table is built (a word no wider than the index: one entry a step)
    step = float(value_of_index(t, spec["exp_table_size"])[1]) * spec["exp_scale"] if t.width > bits else t.lsb
    if step < COARSE_STEP:
        return None
    before = layer.get_input_node().name
    if spec["implementation"] == "stable":
        indexed, alike = "x_max - x in inp_norm_t", "the largest all read exp(0) and get equal shares"
    else:
        indexed, alike = "its input", "each other read the same exp"
    return (
        f"layer {layer.name!r} (Softmax, {spec['implementation']}): its exp table ({spec['exp_table_size']} "
        f"entries) is indexed by the top {bits} bits of {indexed}, {t} (hls4ml derives it from the input type): "
        f"one entry serves inputs {step:g} apart, so inputs within {step:g} of {alike}; give layer {before!r} a "
        f"narrower result type (HLSConfig.LayerName.{before}.Precision.result, "
        "e.g. ap_fixed<16,6>)"
    )
