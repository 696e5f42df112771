"""The wire format: round trips, every malformation named, and garbage never crashing."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.wire import protocol as p


def _message(n=5, n_in=3, n_out=2, raw=4, source=7, seq=11, first_event=100):
    frags = p.make_fragments(
        np.arange(first_event, first_event + n),
        np.arange(n * n_in).reshape(n, n_in) - 4,
        np.arange(n * n_out).reshape(n, n_out) * -3,
        timestamp_ns=123,
        raw_bytes=raw,
    )
    return frags, p.encode_fragments(source, seq, frags)


def test_round_trip_keeps_every_field():
    frags, msg = _message()
    h, got = p.decode(msg)
    assert (h.type, h.source, h.sequence, h.n_records, h.n_inputs, h.n_outputs, h.raw_bytes) == (
        p.FRAGMENTS, 7, 11, 5, 3, 2, 4,
    )  # fmt: skip
    assert len(msg) == p.HEADER_SIZE + 5 * got.dtype.itemsize
    np.testing.assert_array_equal(got["event"], np.arange(100, 105))
    np.testing.assert_array_equal(got["inputs"], frags["inputs"])
    np.testing.assert_array_equal(got["result"], frags["result"])
    assert (got["flags"] == p.RESULT_VALID).all() and (got["timestamp_ns"] == 123).all()


@pytest.mark.parametrize("raw", p.RAW_BYTES)
def test_raw_widths_keep_negative_values(raw):
    frags, msg = _message(raw=raw)
    _, got = p.decode(msg)
    assert got["inputs"].dtype == np.dtype(f"<i{raw}")
    assert got["inputs"].min() == -4 and got["result"].min() == -3 * 9


def test_header_is_little_endian_with_documented_offsets():
    _, msg = _message(source=0x0102, seq=0x0A0B)
    assert msg[:4] == b"FFND" and msg[4] == 1 and msg[5] == p.FRAGMENTS
    assert msg[6:8] == b"\x02\x01" and struct.unpack_from("<Q", msg, 8)[0] == 0x0A0B
    assert struct.unpack_from("<I", msg, 32)[0] == 5 and struct.unpack_from("<HHB", msg, 36) == (3, 2, 4)
    assert struct.unpack_from("<I", msg, 44)[0] == len(msg) - 48


def _mutate(msg: bytes, offset: int, data: bytes) -> bytes:
    b = bytearray(msg)
    b[offset : offset + len(data)] = data
    return bytes(b)


@pytest.mark.parametrize(
    "mutate,reason,where",
    [
        (lambda m: _mutate(m, 0, b"XXXX"), "bad-magic", "bytes 0-3"),
        (lambda m: _mutate(m, 4, b"\x02"), "bad-version", "byte 4"),
        (lambda m: _mutate(m, 5, b"\x09"), "bad-type", "byte 5"),
        (lambda m: m[:-1], "truncated", "header + payload_bytes"),
        (lambda m: m[:20], "truncated", "48-byte header"),
        (lambda m: m + b"\0", "length-mismatch", "header + payload_bytes"),
        (lambda m: _mutate(m, 32, struct.pack("<I", 4)), "length-mismatch", "payload_bytes"),
        (lambda m: _mutate(m, 32, struct.pack("<I", 0)), "bad-descriptor", "n_records"),
        (lambda m: _mutate(m, 40, b"\x03"), "bad-descriptor", "raw_bytes"),
        (lambda m: _mutate(m, 41, b"\x01"), "bad-descriptor", "reserved"),
        (lambda m: _mutate(m, 42, b"\x02"), "bad-descriptor", "bytes 42-43 (n_sources) are 2, expected 0"),
        (lambda m: _mutate(m, p.HEADER_SIZE + 16, b"\x80"), "bad-flags", "fragment 0"),
        (lambda m: _mutate(m, p.HEADER_SIZE + 44 + 22, b"\x01"), "bad-flags", "fragment 1 (bytes 112-115, reserved)"),
    ],
)
def test_each_malformation_is_named(mutate, reason, where):
    _, msg = _message()
    with pytest.raises(p.ProtocolError) as err:
        p.decode(mutate(msg))
    assert err.value.reason == reason
    assert where in str(err.value)


def test_limits_oversize_layout_and_manifest():
    _, msg = _message()
    with pytest.raises(p.ProtocolError, match="oversize"):
        p.decode(msg, p.Limits(max_message_bytes=len(msg) - 1))
    with pytest.raises(p.ProtocolError, match=r"bytes 36-37 \(n_inputs\) is 3, this node expects 4"):
        p.decode(msg, p.Limits(n_inputs=4))
    with pytest.raises(p.ProtocolError, match="wrong-manifest"):
        p.decode(msg, p.Limits(manifest=b"\x01" * 8))


def test_same_length_drain_decodes_as_one_array_and_refuses_a_bad_one():
    msgs = [_message(source=s, first_event=10 * s)[1] for s in range(4)]
    hd, frags = p.decode_same_length(b"".join(msgs), 4, len(msgs[0]))
    assert hd["source"].tolist() == [0, 1, 2, 3] and frags.shape == (4, 5)
    assert frags["event"][2, 0] == 20
    msgs[2] = _mutate(msgs[2], 4, b"\x07")
    assert p.decode_same_length(b"".join(msgs), 4, len(msgs[0])) is None  # the caller decodes one by one


def test_manifest_ids_and_raw_widths():
    assert p.manifest_bytes("00112233445566ff") == bytes.fromhex("00112233445566ff")
    assert p.manifest_bytes(None) == bytes(8)
    with pytest.raises(ValueError, match="16 hex digits"):
        p.manifest_bytes("xyz")
    assert p.raw_bytes_for(16, True) == 2 and p.raw_bytes_for(16, False) == 4 and p.raw_bytes_for(18, True) == 4


def test_events_message_round_trip():
    ev = np.zeros(3, p.event_dtype(2, 3, 1, 2))
    ev["event"] = [5, 6, 7]
    ev["inputs"][1, 1] = [-1, 2, -3]
    msg = p.encode(p.EVENTS, 0, 0, ev, n_inputs=3, n_outputs=1, raw_bytes=2, n_sources=2)
    h, got = p.decode(msg)
    assert h.type == p.EVENTS and got["inputs"][1, 1].tolist() == [-1, 2, -3]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_garbage_is_refused_with_a_reason(data):
    try:
        p.decode(data)
    except p.ProtocolError as exc:
        assert exc.reason in {
            "bad-magic", "bad-version", "bad-type", "truncated", "length-mismatch", "bad-descriptor",
            "bad-flags", "oversize",
        }  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_mutated_messages_are_refused_or_decode_consistently(data):
    _, msg = _message()
    kind = data.draw(st.sampled_from(["byte", "truncate", "extend"]))
    if kind == "byte":
        i = data.draw(st.integers(0, len(msg) - 1))
        msg = _mutate(msg, i, bytes([data.draw(st.integers(0, 255))]))
    elif kind == "truncate":
        msg = msg[: data.draw(st.integers(0, len(msg) - 1))]
    else:
        msg = msg + data.draw(st.binary(min_size=1, max_size=64))
    try:
        h, frags = p.decode(msg)
    except p.ProtocolError:
        return
    # accepted: then the header and the records agree with the bytes
    assert p.HEADER_SIZE + h.n_records * frags.dtype.itemsize == len(msg)
    assert (frags["flags"] & ~np.uint32(p.KNOWN_FLAGS) == 0).all()
    assert (frags["reserved"] == 0).all() and h.n_sources == 0


def test_events_with_header_room_are_encoded_in_place_and_slices_are_copied():
    dtype = p.event_dtype(2, 3, 1, 4)
    ev = p.records_with_room(6, dtype)
    ev[...] = np.zeros(1, dtype)
    ev["event"] = np.arange(6) + 40
    ev["inputs"] = np.arange(6)[:, None, None]
    kw = dict(n_inputs=3, n_outputs=1, raw_bytes=4, n_sources=2)
    whole = p.encode_buffer(p.EVENTS, 1, 9, ev, **kw)
    assert np.shares_memory(whole, ev)  # the header went into the room in front
    part = p.encode_buffer(p.EVENTS, 1, 10, ev[2:], **kw)
    assert not np.shares_memory(part, ev)  # no room in front of a slice: copied, ev untouched
    for msg, seq, want in ((whole, 9, ev), (part, 10, ev[2:])):
        h, got = p.decode(msg.tobytes())
        assert (h.type, h.sequence, h.n_records) == (p.EVENTS, seq, len(want))
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "offset, byte, fast",
    [(0, b"X", False), (4, b"\x02", False), (5, b"\x03", False), (32, b"\x04", False), (36, b"\x09", False),
     (38, b"\x09", False), (40, b"\x02", False), (41, b"\x01", False), (42, b"\x05", False), (44, b"\x01", False),
     (p.HEADER_SIZE + 20, b"\x01", False), (6, b"\x09", True), (8, b"\x63", True), (16, b"\x01", True)],
)  # fmt: skip
def test_same_length_drain_takes_the_fast_path_only_when_each_header_matches_the_first(offset, byte, fast):
    """Source, sequence and sent_ns may differ within a drain; any other header byte of a
    later message that differs from the first's, or a fragment's reserved field set, sends
    the drain down the slow path (which names the bad message)."""
    msgs = [_message(source=s, first_event=10 * s)[1] for s in range(3)]
    msgs[2] = _mutate(msgs[2], offset, byte)
    got = p.decode_same_length(b"".join(msgs), 3, len(msgs[0]))
    assert (got is not None) == fast


def test_same_length_drain_compares_manifests_only_when_the_node_has_one():
    msgs = [_message(source=s)[1] for s in range(2)]
    msgs[1] = _mutate(msgs[1], 24, b"\x01")
    assert p.decode_same_length(b"".join(msgs), 2, len(msgs[0])) is not None
    assert p.decode_same_length(b"".join(msgs), 2, len(msgs[0]), p.Limits(manifest=bytes(8))) is None


def test_limits_hold_for_every_message_type_where_the_field_is_used():
    """A subscriber's (or the offload's) Limits refuse EVENTS and replies of another layout;
    a reply's n_inputs and a request's n_outputs are not compared with them: they are 0."""
    ev = np.zeros(2, p.event_dtype(2, 3, 1, 4))
    events = p.encode_buffer(p.EVENTS, 1, 0, ev, n_inputs=3, n_outputs=1, raw_bytes=4, n_sources=2).tobytes()
    p.decode(events, p.Limits(n_inputs=3, n_outputs=1, raw_bytes=4))
    with pytest.raises(p.ProtocolError, match=r"bytes 36-37 \(n_inputs\) is 3, this node expects 7"):
        p.decode(events, p.Limits(n_inputs=7))
    reply = p.encode(p.OFFLOAD_REPLY, 1, 0, np.zeros(2, p.fragment_dtype(0, 1, 8)), n_inputs=0, n_outputs=1,
                     raw_bytes=8)  # fmt: skip
    p.decode(reply, p.Limits(n_inputs=3, n_outputs=1))
    with pytest.raises(p.ProtocolError, match=r"byte 40 \(raw_bytes\) is 8, this node expects 4"):
        p.decode(reply, p.Limits(n_inputs=3, n_outputs=1, raw_bytes=4))
    # a reply with inputs, a request with results: refused, with or without a layout to expect
    odd_reply = p.encode(p.OFFLOAD_REPLY, 1, 0, np.zeros(2, p.fragment_dtype(5, 1, 4)), n_inputs=5, n_outputs=1,
                         raw_bytes=4)  # fmt: skip
    odd_request = p.encode(p.OFFLOAD_REQUEST, 1, 0, np.zeros(2, p.fragment_dtype(3, 7, 4)), n_inputs=3,
                           n_outputs=7, raw_bytes=4)  # fmt: skip
    for limits in (p.Limits(), p.Limits(n_inputs=3, n_outputs=1)):
        with pytest.raises(p.ProtocolError, match=r"bytes 36-37 \(n_inputs\) is 5, this node expects 0"):
            p.decode(odd_reply, limits)
        with pytest.raises(p.ProtocolError, match=r"bytes 38-39 \(n_outputs\) is 7, this node expects 0"):
            p.decode(odd_request, limits)


def test_make_fragments_of_no_events_says_so():
    with pytest.raises(ValueError, match="no events"):
        p.make_fragments(np.arange(0), np.zeros((0, 4)))
