"""Parsing and printing of fixed-point types, and the error messages users see."""

import pytest

from sim.fixed import OVERFLOW_MODES, QUANTIZATION_MODES, FixedType


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ap_fixed<8,3,AP_RND,AP_SAT>", FixedType(8, 3, True, "AP_RND", "AP_SAT")),
        ("ap_ufixed<10, -2>", FixedType(10, -2, False)),
        ("ap_fixed<4,9,AP_RND_CONV,AP_WRAP_SM,2>", FixedType(4, 9, True, "AP_RND_CONV", "AP_WRAP_SM", 2)),
        ("fixed<16,6,RND,SAT>", FixedType(16, 6, True, "AP_RND", "AP_SAT")),
        ("ufixed<8,0,RND_CONV,SAT_SYM>", FixedType(8, 0, False, "AP_RND_CONV", "AP_SAT_SYM")),
        ("int<8>", FixedType(8, 8, True, integer=True)),
        ("ap_uint<64>", FixedType(64, 64, False, integer=True)),
    ],
)
def test_parse(text, expected):
    assert FixedType.parse(text) == expected


@pytest.mark.parametrize("q", QUANTIZATION_MODES)
@pytest.mark.parametrize("o", OVERFLOW_MODES)
def test_str_round_trips(q, o):
    for n in (0, 2):
        t = FixedType(12, 5, True, q, o, n)
        assert FixedType.parse(str(t)) == t
    assert str(FixedType(12, 5)) == "ap_fixed<12,5>"
    assert str(FixedType(7, 7, False, integer=True)) == "ap_uint<7>"


@pytest.mark.parametrize(
    "text, words",
    [
        ("ap_fixed<8,3,AP_RNDX>", ["ap_fixed<8,3,AP_RNDX>", "unknown quantization mode 'AP_RNDX'", "AP_RND_CONV"]),
        ("ap_fixed<8,3,AP_RND,SATURATE>", ["unknown overflow mode 'SATURATE'"]),
        ("ap_fixed<0,3>", ["width 0"]),
        ("ap_fixed<65,3>", ["width 65", "1..64"]),
        ("ap_fixed<8>", ["expected 2 to 5 parameters"]),
        ("ap_int<8,2>", ["exactly one parameter"]),
        ("ap_fixed<8,x>", ["integer bits I must be an integer, got 'x'"]),
        ("ap_fixed<8,3,AP_RND,AP_SAT,9>", ["saturation bits N=9"]),
        ("float", ["not a fixed-point type"]),
    ],
)
def test_malformed_types_name_the_culprit(text, words):
    with pytest.raises(ValueError) as info:
        FixedType.parse(text)
    for w in words:
        assert w in str(info.value)


def test_wide_intermediates_exist_but_only_declared_widths_convert_floats():
    from sim.fixed import Fixed

    t = FixedType.parse("ap_fixed<64,10>")
    a = Fixed.from_float([1.5, -2.25], t)
    product = a * a
    assert (product.type.width, product.type.int_bits) == (128, 20)
    assert product.cast("ap_fixed<16,6>").values.tolist() == [2.25, 5.0625]
    with pytest.raises(ValueError, match="to_raw supports widths 1..64"):
        product.type.to_raw([1.0])


def test_raw_values_must_be_integers():
    t = FixedType.parse("ap_fixed<8,3>")
    with pytest.raises(ValueError, match="raw values must be integers, got an array of float64"):
        t.cast([1.5, 2.0], FixedType.parse("ap_fixed<8,4>"))
