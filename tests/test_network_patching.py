"""``fpgaflow.network.patching.replaced``: what an attribute swapped for a conversion is
afterwards (on an exception, nested, inherited, a staticmethod), and the conversion's
five swaps of hls4ml attributes leave hls4ml as it was."""

from __future__ import annotations

import inspect

import pytest

from fpgaflow.network import patching
from fpgaflow.network.patching import replaced


def _make_classes():
    class Base:
        def method(self) -> str:
            return "base"

        @staticmethod
        def static() -> str:
            return "static"

        @classmethod
        def klass(cls) -> str:
            return "class"

    class Sub(Base):
        pass

    return Base, Sub


def _new(self) -> str:
    return "new"


def test_restored_on_an_exception():
    Base, _ = _make_classes()
    own = vars(Base)["method"]
    with pytest.raises(RuntimeError, match="inside"), replaced(Base, "method", _new):
        assert Base().method() == "new"
        raise RuntimeError("inside")
    assert vars(Base)["method"] is own
    assert Base().method() == "base"
    assert patching._in_force == {}


def test_static_and_class_methods_come_back_as_themselves():
    Base, _ = _make_classes()
    static, klass = vars(Base)["static"], vars(Base)["klass"]
    with replaced(Base, "static", staticmethod(lambda: "other")), replaced(Base, "klass", _new):
        assert Base.static() == "other"
    assert vars(Base)["static"] is static and vars(Base)["klass"] is klass
    assert Base.static() == "static" and Base.klass() == "class"


def test_an_inherited_attribute_is_inherited_again():
    Base, Sub = _make_classes()
    assert "method" not in vars(Sub)
    with pytest.raises(KeyError), replaced(Sub, "method", _new):
        assert Sub().method() == "new" and Base().method() == "base"
        raise KeyError("inside")
    assert "method" not in vars(Sub)  # deleted from the subclass, not copied down
    Base.method = lambda self: "changed in the base"
    assert Sub().method() == "changed in the base"


def test_nested_replacements_give_way_in_turn():
    Base, _ = _make_classes()
    own = vars(Base)["method"]

    def inner(self) -> str:
        return "inner"

    with replaced(Base, "method", _new):
        with replaced(Base, "method", inner):
            assert Base().method() == "inner"
        assert Base().method() == "new"
    assert vars(Base)["method"] is own


def test_nested_replacements_leaving_out_of_order_restore_the_original():
    Base, Sub = _make_classes()

    def inner(self) -> str:
        return "inner"

    outer_cm, inner_cm = replaced(Sub, "method", _new), replaced(Sub, "method", inner)
    outer_cm.__enter__()
    inner_cm.__enter__()
    outer_cm.__exit__(None, None, None)  # the outer one leaves first: the inner one stays in force
    assert Sub().method() == "inner"
    inner_cm.__exit__(None, None, None)
    assert "method" not in vars(Sub) and Sub().method() == "base"
    assert patching._in_force == {}


def test_reentry_changes_nothing_and_the_last_to_leave_restores():
    Base, _ = _make_classes()
    own = vars(Base)["method"]
    first, second = replaced(Base, "method", _new), replaced(Base, "method", _new)
    first.__enter__()
    second.__enter__()
    assert vars(Base)["method"] is _new  # not a replacement of the replacement
    first.__exit__(None, None, None)  # the first to enter leaves first: the second is still inside
    assert vars(Base)["method"] is _new
    second.__exit__(None, None, None)
    assert vars(Base)["method"] is own


def test_an_attribute_the_owner_does_not_have_is_refused():
    Base, _ = _make_classes()
    with pytest.raises(AttributeError, match="methd"), replaced(Base, "methd", _new):
        pass
    assert not hasattr(Base, "methd")


def _hls4ml_attributes() -> dict[str, object]:
    """The hls4ml class entries the conversion replaces, as the classes hold them."""
    from hls4ml.backends.fpga.fpga_layers import BatchNormalizationQuantizedTanh
    from hls4ml.converters import KerasModelReader
    from hls4ml.model.layers import ApplyAlpha, Conv2DBatchnorm
    from hls4ml.model.optimizer.passes.infer_precision import InferPrecisionTypes
    from hls4ml.model.quantizers import QKerasQuantizer

    owners = {
        "QKerasQuantizer._get_type": (QKerasQuantizer, "_get_type"),
        "InferPrecisionTypes._infer_bn_precision": (InferPrecisionTypes, "_infer_bn_precision"),
        "ApplyAlpha.initialize": (ApplyAlpha, "initialize"),
        "KerasModelReader.get_weights_data": (KerasModelReader, "get_weights_data"),
        "BatchNormalizationQuantizedTanh.set_thresholds": (BatchNormalizationQuantizedTanh, "set_thresholds"),
        "Conv2DBatchnorm.initialize": (Conv2DBatchnorm, "initialize"),
    }
    return {key: vars(owner).get(name) for key, (owner, name) in owners.items()}


def _folded_convolution_model():
    """A QConv2DBatchnorm, so that ``qkeras_folded_convolutions`` swaps Conv2DBatchnorm.initialize."""
    import tensorflow as tf
    from qkeras import QConv2DBatchnorm
    from qkeras.quantizers import quantized_bits

    inp = tf.keras.Input((3, 3, 1))
    return tf.keras.Model(inp, QConv2DBatchnorm(2, 1, kernel_quantizer=quantized_bits(6, 0, alpha=1))(inp))


def test_the_conversion_swaps_leave_hls4ml_as_it_was():
    from fpgaflow.network.bn_thresholds import qkeras_thresholds
    from fpgaflow.network.folding import qkeras_folded_convolutions
    from fpgaflow.network.quantizers import exact_alpha_results, exact_weight_types
    from fpgaflow.network.weight_names import exact_weight_names

    before = _hls4ml_attributes()
    with pytest.raises(RuntimeError, match="hls4ml failed"):
        with (
            exact_weight_types(),
            exact_alpha_results(),
            exact_weight_names(),
            qkeras_folded_convolutions(_folded_convolution_model()),
            qkeras_thresholds("config.yml"),
        ):
            inside = _hls4ml_attributes()
            assert all(inside[k] is not before[k] for k in before), "every swap is in force"
            with exact_weight_types(), exact_alpha_results(), exact_weight_names():  # re-entry
                again = _hls4ml_attributes()
                assert again == inside and all(again[k] is inside[k] for k in inside)
            assert all(_hls4ml_attributes()[k] is inside[k] for k in inside)
            raise RuntimeError("hls4ml failed")
    after = _hls4ml_attributes()
    assert all(after[k] is before[k] for k in before)
    assert patching._in_force == {}


def test_hls4ml_own_weight_type_is_found_inside_the_swap():
    from hls4ml.model.quantizers import QKerasQuantizer

    from fpgaflow.network.quantizers import exact_weight_types

    own = vars(QKerasQuantizer)["_get_type"]
    with exact_weight_types():
        assert QKerasQuantizer._get_type is not own
        assert inspect.unwrap(QKerasQuantizer._get_type) is own
