"""The wire format between boards and the node, version 1: a fixed 48-byte little-endian header, then a packed
array of fixed-size records (fragments, or built events).  Never pickle.

One message carries many fragments of one source, because the per-message cost in
Python (a ``recv``, a header check) is what limits a builder; the records are decoded
as one NumPy structured array, and a drain of many equally long messages is validated
as a single array.  ``docs/protocol.md`` is the reference; this module is the code.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MAGIC = b"FFND"
VERSION = 1

# message types
FRAGMENTS = 1  # source -> node: fragments with inputs and (maybe) the FPGA result
OFFLOAD_REQUEST = 2  # node -> board: fragments with inputs, no result
OFFLOAD_REPLY = 3  # board -> node: fragments with the result, no inputs
EVENTS = 4  # node -> downstream: built events
TYPES = {FRAGMENTS: "fragments", OFFLOAD_REQUEST: "offload-request", OFFLOAD_REPLY: "offload-reply", EVENTS: "events"}

# fragment flags (bits of the record's ``flags``)
RESULT_VALID = 1 << 0  # the FPGA result field holds the FPGA's answer
OVERFLOW = 1 << 1  # the FPGA saw an overflow: the result is suspect
ERROR = 1 << 2  # the FPGA reported an error: the result is suspect
KNOWN_FLAGS = RESULT_VALID | OVERFLOW | ERROR  # what a fragment may carry
FROM_BOARD = 1 << 3  # event records only (set by the node): this source's result came from an offload board
SUSPECT = OVERFLOW | ERROR

# built-event status bits (``status`` of an event record)
COMPLETE = 1 << 0  # every expected source arrived
TIMED_OUT = 1 << 1  # left incomplete after the build timeout
EVICTED = 1 << 2  # left incomplete because the in-flight window moved past it
DRAINED = 1 << 3  # left incomplete at shutdown
FALLBACK = 1 << 4  # the CPU computed a result for at least one fragment
MISMATCH = 1 << 5  # FPGA and CPU raw results differ for at least one fragment
VALIDATED = 1 << 6  # chosen for the validation sample: CPU ran on every fragment
OFFLOADED = 1 << 7  # a board computed a result for at least one fragment
BAD_INPUTS = 1 << 8  # a fragment's inputs lie outside the firmware's input type: no CPU result for it

RAW_BYTES = (1, 2, 4, 8)
MAX_SOURCES = 64  # a built event's ``missing`` field is a 64-bit mask of source indices

HEADER = struct.Struct("<4sBBHQQ8sIHHBxHI")
HEADER_SIZE = HEADER.size  # 48
HEADER_DTYPE = np.dtype(
    [
        ("magic", "S4"),
        ("version", "u1"),
        ("type", "u1"),
        ("source", "<u2"),
        ("sequence", "<u8"),
        ("sent_ns", "<u8"),
        ("manifest", "S8"),
        ("n_records", "<u4"),
        ("n_inputs", "<u2"),
        ("n_outputs", "<u2"),
        ("raw_bytes", "u1"),
        ("reserved", "u1"),
        ("n_sources", "<u2"),
        ("payload_bytes", "<u4"),
    ]
)
assert HEADER_DTYPE.itemsize == HEADER_SIZE


def _header_bytes(*fields: str) -> np.ndarray:
    """A byte mask over the header, 0xFF on the bytes of ``fields``."""
    mask = np.zeros(HEADER_SIZE, np.uint8)
    for name in fields:
        dtype, offset = HEADER_DTYPE.fields[name][:2]
        mask[offset : offset + dtype.itemsize] = 0xFF
    return mask


_SAME_FIELDS = ("magic", "version", "type", "n_records", "n_inputs", "n_outputs", "raw_bytes", "reserved",
                "n_sources", "payload_bytes")  # fmt: skip
_SAME_BYTES_ANY_MANIFEST = _header_bytes(*_SAME_FIELDS)
_SAME_BYTES = _header_bytes(*_SAME_FIELDS, "manifest")


class ProtocolError(ValueError):
    """A message that cannot be used; ``reason`` is a short label for counting, the
    message says which field at which byte offset is wrong."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Header:
    type: int
    source: int
    sequence: int
    sent_ns: int
    manifest: bytes
    n_records: int
    n_inputs: int
    n_outputs: int
    raw_bytes: int
    n_sources: int
    payload_bytes: int


@dataclass(frozen=True)
class Limits:
    """What a receiver accepts; anything else is malformed."""

    max_message_bytes: int = 16 << 20
    n_inputs: int | None = None  # None: any
    n_outputs: int | None = None
    raw_bytes: int | None = None
    manifest: bytes | None = None  # None: any; else the 8-byte manifest id (or zeros: none)


@lru_cache(maxsize=64)
def fragment_dtype(n_inputs: int, n_outputs: int, raw_bytes: int) -> np.dtype:
    """One fragment: event number, board timestamp, flags, inputs and result as raw
    little-endian signed integers of ``raw_bytes`` bytes."""
    raw = f"<i{raw_bytes}"
    fields = [("event", "<u8"), ("timestamp_ns", "<u8"), ("flags", "<u4"), ("reserved", "<u4")]
    fields.append(("inputs", raw, (n_inputs,)))
    fields.append(("result", raw, (n_outputs,)))
    return np.dtype(fields)


@lru_cache(maxsize=64)
def event_dtype(n_sources: int, n_inputs: int, n_outputs: int, raw_bytes: int) -> np.dtype:
    """One built event: its number, status, missing sources, timings and, per source,
    flags, inputs, the FPGA result and the CPU result."""
    raw = f"<i{raw_bytes}"
    s = (n_sources,)
    return np.dtype(
        [
            ("event", "<u8"),
            ("status", "<u4"),
            ("reserved", "<u4"),
            ("missing", "<u8"),
            ("first_ns", "<u8"),  # earliest board timestamp of its fragments
            ("built_ns", "<u8"),  # when the node let it go
            ("flags", "<u4", s),
            ("cpu_valid", "u1", s),
            ("inputs", raw, s + (n_inputs,)),
            ("fpga", raw, s + (n_outputs,)),
            ("cpu", raw, s + (n_outputs,)),
        ]
    )


def manifest_bytes(manifest_id: str | bytes | None) -> bytes:
    """The 8-byte form of a manifest id (16 hex digits); zeros mean 'no manifest'."""
    if manifest_id is None or manifest_id in ("", b""):
        return bytes(8)
    if isinstance(manifest_id, bytes):
        if len(manifest_id) != 8:
            raise ValueError(f"manifest id must be 8 bytes, got {len(manifest_id)}")
        return manifest_id
    try:
        b = bytes.fromhex(manifest_id)
    except ValueError:
        raise ValueError(f"manifest id {manifest_id!r} is not 16 hex digits") from None
    if len(b) != 8:
        raise ValueError(f"manifest id {manifest_id!r} is not 16 hex digits")
    return b


def raw_bytes_for(width: int, signed: bool) -> int:
    """Smallest wire integer that holds raw values of a fixed-point type."""
    bits = width + (0 if signed else 1)
    for n in RAW_BYTES:
        if bits <= 8 * n:
            return n
    raise ValueError(f"a {width}-bit {'signed' if signed else 'unsigned'} type does not fit a 64-bit raw integer")


# ----------------------------------------------------------------------------- encode
def encode(
    type_: int,
    source: int,
    sequence: int,
    records: np.ndarray,
    *,
    n_inputs: int,
    n_outputs: int,
    raw_bytes: int,
    manifest: bytes = bytes(8),
    n_sources: int = 0,
    sent_ns: int = 0,
) -> bytes:
    """A message: the header, then ``records`` (a structured array of the right dtype)."""
    return encode_buffer(
        type_,
        source,
        sequence,
        records,
        n_inputs=n_inputs,
        n_outputs=n_outputs,
        raw_bytes=raw_bytes,
        manifest=manifest,
        n_sources=n_sources,
        sent_ns=sent_ns,
    ).tobytes()


def encode_buffer(
    type_: int,
    source: int,
    sequence: int,
    records: np.ndarray,
    *,
    n_inputs: int,
    n_outputs: int,
    raw_bytes: int,
    manifest: bytes = bytes(8),
    n_sources: int = 0,
    sent_ns: int = 0,
) -> np.ndarray:
    """``encode`` into a NumPy byte buffer: send it with ``socket.send(buf, copy=False)``
    and large messages are never copied again.  Records made by ``records_with_room``
    already sit behind room for the header, and are not copied at all (the returned
    buffer shares their memory); others are copied once into a fresh buffer."""
    buf = _room_before(records)
    if buf is None:
        records = np.ascontiguousarray(records)
        buf = np.empty(HEADER_SIZE + records.nbytes, np.uint8)
        buf[HEADER_SIZE:] = records.reshape(-1).view(np.uint8)
    HEADER.pack_into(
        buf, 0, MAGIC, VERSION, type_, source, sequence, sent_ns, manifest, len(records),
        n_inputs, n_outputs, raw_bytes, n_sources, records.nbytes,
    )  # fmt: skip
    return buf


def records_with_room(n: int, dtype: np.dtype) -> np.ndarray:
    """``n`` uninitialised records laid out behind ``HEADER_SIZE`` spare bytes, so that
    ``encode_buffer`` can put a message header in front of them without copying them
    (the node's built events: published without one more copy of every event)."""
    buf = np.empty(HEADER_SIZE + n * dtype.itemsize, np.uint8)
    return buf[HEADER_SIZE:].view(dtype)


def _room_before(records: np.ndarray) -> np.ndarray | None:
    """The byte buffer a ``records_with_room`` array lives in, if ``records`` is all of one."""
    owner = records.base
    while isinstance(owner, np.ndarray) and owner.base is not None and isinstance(owner.base, np.ndarray):
        owner = owner.base
    if (
        not isinstance(owner, np.ndarray)
        or owner.dtype != np.uint8
        or owner.ndim != 1
        or not owner.flags.writeable
        or not records.flags.c_contiguous
        or owner.nbytes != HEADER_SIZE + records.nbytes
        or records.ctypes.data != owner.ctypes.data + HEADER_SIZE
    ):
        return None
    return owner


def make_fragments(
    events: np.ndarray,
    inputs: np.ndarray,
    result: np.ndarray | None = None,
    flags: np.ndarray | int | None = None,
    timestamp_ns: np.ndarray | int = 0,
    raw_bytes: int = 4,
) -> np.ndarray:
    """Fragments as a structured array (vectorised; one row per event).

    ``flags`` defaults to RESULT_VALID where a result is given, else 0."""
    events = np.asarray(events, dtype=np.uint64).reshape(-1)
    if not len(events):  # (NumPy's reshape error said nothing of it)
        raise ValueError("make_fragments: no events (a message carries at least one fragment)")
    inputs = np.asarray(inputs).reshape(len(events), -1)
    n_out = 0 if result is None else np.asarray(result).reshape(len(events), -1).shape[1]
    frags = np.zeros(len(events), fragment_dtype(inputs.shape[1], n_out, raw_bytes))
    frags["event"] = events
    frags["timestamp_ns"] = timestamp_ns
    frags["inputs"] = inputs
    if result is not None:
        frags["result"] = np.asarray(result).reshape(len(events), -1)
    frags["flags"] = (RESULT_VALID if result is not None else 0) if flags is None else flags
    return frags


def encode_fragments(
    source: int, sequence: int, fragments: np.ndarray, manifest: bytes = bytes(8), type_: int = FRAGMENTS
) -> bytes:
    """A FRAGMENTS (or offload) message from a fragment array made by ``make_fragments``."""
    d = fragments.dtype
    return encode(
        type_, source, sequence, fragments, n_inputs=d["inputs"].shape[0], n_outputs=d["result"].shape[0],
        raw_bytes=d["inputs"].base.itemsize, manifest=manifest, sent_ns=time.time_ns(),
    )  # fmt: skip


# ----------------------------------------------------------------------------- decode
def decode_header(buf: bytes | memoryview, limits: Limits = Limits()) -> Header:
    """The validated header of one message; raises ProtocolError naming the field."""
    n = len(buf)
    if n > limits.max_message_bytes:
        raise ProtocolError("oversize", f"{n} bytes exceed the maximum {limits.max_message_bytes}")
    if n < HEADER_SIZE:
        raise ProtocolError("truncated", f"{n} bytes, shorter than the {HEADER_SIZE}-byte header")
    (magic, version, type_, source, seq, sent, manifest, n_rec, n_in, n_out, raw, n_src, payload) = HEADER.unpack_from(
        buf
    )
    if magic != MAGIC:
        raise ProtocolError("bad-magic", f"bytes 0-3 are {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise ProtocolError("bad-version", f"byte 4 (version) is {version}, this node speaks {VERSION}")
    if type_ not in TYPES:
        raise ProtocolError("bad-type", f"byte 5 (message type) is {type_}, expected one of {sorted(TYPES)}")
    if raw not in RAW_BYTES:
        raise ProtocolError("bad-descriptor", f"byte 40 (raw_bytes) is {raw}, expected one of {RAW_BYTES}")
    if buf[41] != 0:
        raise ProtocolError("bad-descriptor", f"byte 41 (reserved) is {buf[41]}, expected 0")
    if n_rec == 0:
        raise ProtocolError("bad-descriptor", "bytes 32-35 (n_records) are 0: an empty message")
    if type_ != EVENTS and n_src != 0:
        raise ProtocolError(
            "bad-descriptor", f"bytes 42-43 (n_sources) are {n_src}, expected 0 on a {TYPES[type_]} message"
        )
    itemsize = _itemsize(type_, n_src, n_in, n_out, raw)
    if payload != n_rec * itemsize:
        raise ProtocolError(
            "length-mismatch",
            f"bytes 44-47 (payload_bytes) say {payload}, "
            f"but {n_rec} records of {itemsize} bytes need {n_rec * itemsize}",
        )
    if n != HEADER_SIZE + payload:
        raise ProtocolError(
            "length-mismatch" if n > HEADER_SIZE + payload else "truncated",
            f"message is {n} bytes, header + payload_bytes say {HEADER_SIZE + payload}",
        )
    for field, want, got, where, unused_in in (
        ("n_inputs", limits.n_inputs, n_in, "bytes 36-37", OFFLOAD_REPLY),  # a reply carries results only
        ("n_outputs", limits.n_outputs, n_out, "bytes 38-39", OFFLOAD_REQUEST),  # a request inputs only
        ("raw_bytes", limits.raw_bytes, raw, "byte 40", None),
    ):
        if type_ == unused_in:
            want = 0
        if want is not None and got != want:
            raise ProtocolError("bad-descriptor", f"{where} ({field}) is {got}, this node expects {want}")
    if limits.manifest is not None and manifest != limits.manifest and type_ in (FRAGMENTS, OFFLOAD_REPLY):
        raise ProtocolError(
            "wrong-manifest", f"bytes 24-31 (manifest id) are {manifest.hex()}, the node runs {limits.manifest.hex()}"
        )
    return Header(type_, source, seq, sent, manifest, n_rec, n_in, n_out, raw, n_src, payload)


def _itemsize(type_: int, n_sources: int, n_inputs: int, n_outputs: int, raw_bytes: int) -> int:
    if type_ == EVENTS:
        if not 1 <= n_sources <= MAX_SOURCES:
            raise ProtocolError("bad-descriptor", f"bytes 42-43 (n_sources) is {n_sources}, expected 1..{MAX_SOURCES}")
        return event_dtype(n_sources, n_inputs, n_outputs, raw_bytes).itemsize
    return fragment_dtype(n_inputs, n_outputs, raw_bytes).itemsize


def decode(buf: bytes | memoryview, limits: Limits = Limits(), *, check: bool = True) -> tuple[Header, np.ndarray]:
    """Header and records of one message (the records are a read-only view of ``buf``).

    Fragment flags outside the known bits, or a fragment's reserved field set, make the
    message malformed (``check=False``: the caller judges each fragment, ``bad_fragments``)."""
    h = decode_header(buf, limits)
    if h.type == EVENTS:
        dtype = event_dtype(h.n_sources, h.n_inputs, h.n_outputs, h.raw_bytes)
    else:
        dtype = fragment_dtype(h.n_inputs, h.n_outputs, h.raw_bytes)
    records = np.frombuffer(buf, dtype, h.n_records, HEADER_SIZE)
    if h.type != EVENTS and check:
        check_fragments(records)
    return h, records


def bad_fragments(fragments: np.ndarray) -> np.ndarray:
    """Which fragments have unknown flag bits or their reserved field set (``check_fragments``)."""
    return ((fragments["flags"] & ~np.uint32(KNOWN_FLAGS)) != 0) | (fragments["reserved"] != 0)


def check_fragments(fragments: np.ndarray, first_offset: int = HEADER_SIZE) -> None:
    """Each fragment's flags hold only known bits and its reserved field is 0."""
    size = fragments.dtype.itemsize
    bad = np.flatnonzero(fragments["flags"] & ~np.uint32(KNOWN_FLAGS))
    if len(bad):
        i = int(bad[0])
        raise ProtocolError(
            "bad-flags",
            f"fragment {i} (bytes {first_offset + i * size + 16}-{first_offset + i * size + 19}, flags) "
            f"has unknown flag bits {int(fragments['flags'][i]):#x}",
        )
    bad = np.flatnonzero(fragments["reserved"])
    if len(bad):
        i = int(bad[0])
        raise ProtocolError(
            "bad-flags",
            f"fragment {i} (bytes {first_offset + i * size + 20}-{first_offset + i * size + 23}, reserved) "
            f"is {int(fragments['reserved'][i]):#x}, expected 0",
        )


@lru_cache(maxsize=64)
def _message_dtype(n_inputs: int, n_outputs: int, raw_bytes: int, n_records: int) -> np.dtype:
    """A whole FRAGMENTS message as one record: header, then its fragments."""
    return np.dtype([("h", HEADER_DTYPE), ("f", fragment_dtype(n_inputs, n_outputs, raw_bytes), (n_records,))])


def decode_same_length(
    buf: bytes | memoryview | np.ndarray, n_messages: int, length: int, limits: Limits = Limits()
) -> tuple[np.ndarray, np.ndarray] | None:
    """Fast path for a drain of ``n_messages`` equally long messages laid end to end in
    ``buf``: headers and fragments of all of them as two arrays, views of ``buf``
    (``fragments`` has shape (n_messages, n_records)).

    Returns None when they are not all valid FRAGMENTS messages of one layout; the
    caller then decodes them one by one to find and count the bad ones."""
    mv = memoryview(buf).cast("B")
    h = decode_header(mv[:length], limits)  # raises for the first; the rest must match it
    if h.type != FRAGMENTS:
        return None
    dtype = _message_dtype(h.n_inputs, h.n_outputs, h.raw_bytes, h.n_records)
    if dtype.itemsize != length:
        return None
    msgs = np.frombuffer(mv, dtype, n_messages)
    # every header must equal the first (validated above) in every byte but source,
    # sequence and sent_ns: one masked comparison over all the drain's headers
    heads = np.frombuffer(mv, np.uint8, n_messages * length).reshape(n_messages, length)[:, :HEADER_SIZE]
    mask = _SAME_BYTES if limits.manifest is not None else _SAME_BYTES_ANY_MANIFEST
    if ((heads ^ heads[0]) & mask).any():
        return None
    frags = msgs["f"]
    if (frags["flags"] & ~np.uint32(KNOWN_FLAGS)).any() or frags["reserved"].any():
        return None
    return msgs["h"], frags
