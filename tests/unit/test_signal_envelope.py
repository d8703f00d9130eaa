"""Gene Signal: signing, derived ids, the bounded frame decoder, and what forgers cannot do."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vudo.errors import RemoteValueError
from vudo.identity import Identity
from vudo.signals import envelope as env
from vudo.signals.envelope import (
    ActionPotential,
    Announce,
    Directed,
    Flood,
    Gradient,
    Graft,
    IHave,
    Prune,
    Push,
    Quorum,
    Signal,
    decode_frame,
    encode_frame,
    verify,
)
from vudo.testing.signalsim import identities

FLOOD = Flood()
T0 = 1_800_000_000.0
ME, OTHER = identities(2)
NONCE = b"\x01" * 8


def make(signal_type: env.SignalType = FLOOD, payload: bytes = b"hello", ttl: int = 8, ident: Identity = ME) -> Signal:
    return env.create(ident, signal_type, payload, ttl=ttl, now=T0, nonce=NONCE)


def reason_of(fn: object, *args: object) -> str:
    with pytest.raises(RemoteValueError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value.reason


TYPES = [Flood(), Gradient(0.5, "cpu"), Directed(OTHER.node_id), Quorum(0.6, "k"), ActionPotential(500, "alarm")]


@pytest.mark.parametrize("signal_type", TYPES, ids=env.KINDS)
def test_every_type_signs_round_trips_and_verifies(signal_type: env.SignalType) -> None:
    s = make(signal_type)
    verify(s)
    frame = decode_frame(encode_frame(Push(s, 3)))
    assert isinstance(frame, Push) and frame.signal == s and frame.hops == 3 and not frame.spread
    verify(frame.signal)
    assert s.kind == env.kind_of(signal_type)


def test_id_is_derived_and_differs_by_nonce() -> None:
    a = make()
    b = env.create(ME, Flood(), b"hello", ttl=8, now=T0, nonce=b"\x02" * 8)
    assert a.id != b.id
    assert len(a.id) == env.ID_HEX_LEN


def test_forged_signature_is_rejected() -> None:
    s = make()
    forged = msgspec.structs.replace(s, signature=bytes(64))
    assert reason_of(verify, forged) == env.BAD_SIGNATURE


def test_signature_of_another_source_is_rejected() -> None:
    s = make()
    theirs = make(ident=OTHER)
    # Claim OTHER's signal came from ME (and keep its id): the id no longer matches the fields.
    assert reason_of(verify, msgspec.structs.replace(theirs, source=ME.node_id)) == env.BAD_ID
    # Re-derive the id too: now the signature does not match.
    body = env.signed_bytes(1, ME.node_id, theirs.signal_type, theirs.payload, theirs.ttl, theirs.timestamp, theirs.nonce)
    claimed = msgspec.structs.replace(theirs, source=ME.node_id, id=env.signal_id(body))
    assert reason_of(verify, claimed) == env.BAD_SIGNATURE
    verify(s)


@pytest.mark.parametrize(
    "change",
    [
        {"payload": b"HELLO"},
        {"ttl": 200},  # TTL inflation
        {"timestamp": T0 + 100},
        {"signal_type": Gradient(0.9)},
        {"nonce": b"\x09" * 8},
    ],
)
def test_any_signed_field_changed_is_rejected(change: dict[str, object]) -> None:
    s = make(Gradient(0.5))
    tampered = msgspec.structs.replace(s, **change)
    assert reason_of(verify, tampered) == env.BAD_ID
    # Even with a recomputed id the signature gives it away.
    t = tampered
    body = env.signed_bytes(t.v, t.source, t.signal_type, t.payload, t.ttl, t.timestamp, t.nonce)
    assert reason_of(verify, msgspec.structs.replace(t, id=env.signal_id(body))) == env.BAD_SIGNATURE


def test_unknown_version_is_refused() -> None:
    assert reason_of(verify, msgspec.structs.replace(make(), v=2)) == env.UNSUPPORTED_VERSION


def test_oversize_frame_and_payload() -> None:
    assert reason_of(decode_frame, b"\x00" * (env.MAX_FRAME + 1)) == env.OVERSIZE
    s = make()
    big = msgspec.structs.replace(s, payload=b"x" * (env.MAX_PAYLOAD + 1))
    wire = encode_frame(Push(big, 1))
    assert reason_of(lambda: decode_frame(wire, max_bytes=env.MAX_FRAME * 2)) == env.OVERSIZE


def test_hops_beyond_ttl_are_refused() -> None:
    s = make(ttl=4)
    decode_frame(encode_frame(Push(s, 4)))
    assert reason_of(decode_frame, encode_frame(Push(s, 5))) == env.HOPS_EXCEEDED


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\xc1",
        msgspec.msgpack.encode(["push"]),
        msgspec.msgpack.encode(["nope", 1]),
        msgspec.msgpack.encode(["graft", "not-hex"]),
        msgspec.msgpack.encode(["ihave", []]),
        msgspec.msgpack.encode(["ihave", [["a" * 32, 1]] * (env.MAX_IHAVE_IDS + 1)]),
        msgspec.msgpack.encode(["push", [1, "0" * 32, "x", ["flood"], b"", 0, T0, NONCE, bytes(64)], 0]),  # ttl 0
        msgspec.msgpack.encode(["push", [1, "0" * 32, "x", ["gradient", 1.5, ""], b"", 3, T0, NONCE, bytes(64)], 0]),
        msgspec.msgpack.encode(["push", [1, "0" * 32, "x", ["gradient", float("nan"), ""], b"", 3, T0, NONCE, bytes(64)], 0]),
        msgspec.msgpack.encode(["push", [1, "0" * 32, "x", ["flood"], b"", 3, float("inf"), NONCE, bytes(64)], 0]),
        msgspec.msgpack.encode(["push", [1, "0" * 32, "x", ["flood"], b"", 3, T0, b"short", bytes(64)], 0]),
    ],
)
def test_malformed_frames_are_named(bad: bytes) -> None:
    assert reason_of(decode_frame, bad) == env.MALFORMED


def test_control_frames_round_trip() -> None:
    s = make()
    for frame in (IHave([Announce(s.id, 2)]), Graft(s.id), Graft(None), Prune(), Push(s, 1, spread=True)):
        assert decode_frame(encode_frame(frame)) == frame


def test_create_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="payload"):
        env.create(ME, Flood(), b"x" * (env.MAX_PAYLOAD + 1), ttl=3, now=T0, nonce=NONCE)
    with pytest.raises(ValueError, match="ttl"):
        env.create(ME, Flood(), b"", ttl=0, now=T0, nonce=NONCE)
    with pytest.raises(ValueError, match="nonce"):
        env.create(ME, Flood(), b"", ttl=3, now=T0, nonce=b"x")
    with pytest.raises(ValueError, match="timestamp"):
        env.create(ME, Flood(), b"", ttl=3, now=float("nan"), nonce=NONCE)
    with pytest.raises(ValueError, match="signal type"):
        env.create(ME, Gradient(2.0), b"", ttl=3, now=T0, nonce=NONCE)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_only_ever_raise_a_named_rejection(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except RemoteValueError as err:
        assert err.reason in env.REASONS
        return
    if isinstance(frame, Push):
        with pytest.raises(RemoteValueError):
            verify(frame.signal)


_signal_types = st.one_of(
    st.just(Flood()),
    st.builds(Gradient, st.floats(0.01, 1.0), st.text(max_size=8)),
    st.builds(Directed, st.sampled_from([ME.node_id, OTHER.node_id])),
    st.builds(Quorum, st.floats(0.01, 1.0), st.text(max_size=8)),
    st.builds(ActionPotential, st.integers(0, 10_000), st.text(max_size=8)),
)


@settings(max_examples=60, deadline=None)
@given(_signal_types, st.binary(max_size=256), st.integers(1, 32), st.data())
def test_a_flipped_byte_never_yields_a_different_valid_signal(signal_type: env.SignalType, payload: bytes, ttl: int, data: st.DataObject) -> None:
    s = env.create(ME, signal_type, payload, ttl=ttl, now=T0, nonce=NONCE)
    wire = bytearray(encode_frame(Push(s, 1)))
    pos = data.draw(st.integers(0, len(wire) - 1))
    wire[pos] ^= data.draw(st.integers(1, 255))
    try:
        frame = decode_frame(bytes(wire))
        assert isinstance(frame, Push)
        verify(frame.signal)
    except RemoteValueError:
        return
    # Only the unsigned hop count (or the spread flag) may differ from what was signed.
    assert frame.signal == s
