import base64

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vudo.errors import RemoteValueError
from vudo.gradient.vector import GradientVector
from vudo.hyphal.announcement import LeaveNotice, NodeAnnouncement, announce, verify_announcement
from vudo.hyphal.capability import Compute, Gateway, Storage, Witness
from vudo.hyphal.signed import MAX_SIGNED_VALUE, SIGNING_DOMAIN, Carrier, open_sealed, seal, verify_sealed
from vudo.identity import Identity

NOW = 1_800_000_000.0
TTL = 60.0
ADDR = "127.0.0.1:7400"


def carrier_of(ident: Identity, generation: int = 5, addr: str = ADDR) -> Carrier:
    return Carrier(ident.node_id, generation, addr)


def make_announcement(ident: Identity, ts: float = NOW) -> NodeAnnouncement:
    return NodeAnnouncement(
        node_id=ident.node_id,
        addr=ADDR,
        api="http://127.0.0.1:7500",
        capabilities=(Compute(cores=4, memory_mb=8192), Storage(capacity_mb=1000, iops=100), Gateway(protocols=("http",)), Witness(stake=5)),
        version="0.2.0",
        timestamp=ts,
    )


def reason(value: str, carrier: Carrier, now: float = NOW) -> str:
    with pytest.raises(RemoteValueError) as info:
        verify_announcement(value, carrier=carrier, now=now, ttl=TTL)
    return info.value.reason


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hand_sealed(signer: Identity, carrier: Carrier, body: bytes) -> str:
    head = msgspec.json.encode(carrier)
    message = SIGNING_DOMAIN + len(head).to_bytes(4, "big") + head + body
    return f"{b64(head)}.{b64(body)}.{b64(signer.sign(message))}"


def test_valid_announcement_roundtrips() -> None:
    ident = Identity.generate()
    ann = make_announcement(ident)
    c = carrier_of(ident)
    assert verify_announcement(announce(ident, ann, carrier=c), carrier=c, now=NOW + 1, ttl=TTL) == ann


def test_announcing_for_someone_else_is_refused() -> None:
    a, b = Identity.generate(), Identity.generate()
    with pytest.raises(ValueError):
        announce(a, make_announcement(b), carrier=carrier_of(a))
    with pytest.raises(ValueError):
        announce(a, make_announcement(a), carrier=carrier_of(b))


def test_expired_announcement_is_stale() -> None:
    ident = Identity.generate()
    c = carrier_of(ident)
    assert reason(announce(ident, make_announcement(ident), carrier=c), c, now=NOW + TTL + 1) == "stale"


def test_far_future_announcement_is_rejected() -> None:
    ident = Identity.generate()
    c = carrier_of(ident)
    assert reason(announce(ident, make_announcement(ident, ts=NOW + 3600), carrier=c), c) == "future"


def test_value_signed_by_another_key_is_a_bad_signature() -> None:
    real, forger = Identity.generate(), Identity.generate()
    c = carrier_of(real)
    forged = hand_sealed(forger, c, msgspec.json.encode(make_announcement(real)))
    assert reason(forged, c) == "bad_signature"


def test_value_naming_another_node_is_wrong_owner() -> None:
    a, b = Identity.generate(), Identity.generate()
    assert reason(announce(a, make_announcement(a), carrier=carrier_of(a)), carrier_of(b)) == "wrong_owner"


def test_a_value_is_bound_to_the_generation_and_address_that_carry_it() -> None:
    ident = Identity.generate()
    value = announce(ident, make_announcement(ident), carrier=carrier_of(ident, generation=5))
    # The identity hijack: the same value re-published under a newer generation or another address.
    assert reason(value, carrier_of(ident, generation=6)) == "wrong_generation"
    assert reason(value, carrier_of(ident, addr="127.0.0.1:9999")) == "wrong_addr"
    # Any signed kind gets the binding, e.g. a leave notice replayed into a restarted generation.
    leave = seal(ident, LeaveNotice(ident.node_id, NOW), carrier=carrier_of(ident, generation=5))
    with pytest.raises(RemoteValueError) as info:
        verify_sealed(leave, LeaveNotice, carrier=carrier_of(ident, generation=9))
    assert info.value.reason == "wrong_generation"
    assert verify_sealed(leave, LeaveNotice, carrier=carrier_of(ident, generation=5)).timestamp == NOW


def test_rewriting_the_carrier_breaks_the_signature() -> None:
    ident = Identity.generate()
    value = announce(ident, make_announcement(ident), carrier=carrier_of(ident, generation=5))
    _, body, sig = value.split(".")
    moved = f"{b64(msgspec.json.encode(carrier_of(ident, generation=6)))}.{body}.{sig}"
    assert reason(moved, carrier_of(ident, generation=6)) == "bad_signature"


@given(st.binary(max_size=64), st.integers(min_value=0, max_value=400))
def test_tampering_with_any_byte_is_rejected(noise: bytes, position: int) -> None:
    ident = Identity.generate()
    c = carrier_of(ident)
    value = announce(ident, make_announcement(ident), carrier=c)
    head, body, sig = value.split(".")
    part = position % 2
    raw = bytearray(base64.urlsafe_b64decode((head, body)[part] + "=" * (-len((head, body)[part]) % 4)))
    idx = position % len(raw)
    raw[idx] ^= (noise[0] if noise else 1) or 1
    tampered = f"{b64(bytes(raw))}.{body}.{sig}" if part == 0 else f"{head}.{b64(bytes(raw))}.{sig}"
    assert reason(tampered, c) in ("malformed", "bad_signature", "wrong_owner", "wrong_generation", "wrong_addr")


@given(st.text(max_size=300))
def test_garbage_never_verifies(text: str) -> None:
    ident = Identity.generate()
    assert reason(text, carrier_of(ident)) in ("malformed", "oversize")


def test_oversize_value_is_rejected_before_parsing() -> None:
    ident = Identity.generate()
    assert reason("A" * (MAX_SIGNED_VALUE + 1), carrier_of(ident)) == "oversize"


@pytest.mark.parametrize(
    "field,bad",
    [("compute_available", 1.5), ("storage_available", -0.1), ("hops", 300), ("credit_balance", -1.0)],
)
def test_out_of_range_gradient_fields_are_malformed(field: str, bad: object) -> None:
    ident = Identity.generate()
    good = GradientVector(ident.node_id, 0.5, 0.5, 0.5, 1.0, NOW, 0)
    raw = msgspec.to_builtins(good)
    raw[field] = bad
    value = hand_sealed(ident, carrier_of(ident), msgspec.json.encode(raw))
    with pytest.raises(RemoteValueError) as info:
        open_sealed(value, GradientVector, carrier=carrier_of(ident), now=NOW, ttl=TTL)
    assert info.value.reason == "malformed"
    assert field in info.value.detail


def test_gradient_seal_roundtrip() -> None:
    ident = Identity.generate()
    g = GradientVector(ident.node_id, 0.1, 0.2, 0.3, 1.0, NOW, 0)
    c = carrier_of(ident)
    assert open_sealed(seal(ident, g, carrier=c), GradientVector, carrier=c, now=NOW, ttl=TTL) == g
