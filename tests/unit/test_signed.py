import base64

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vudo.errors import RemoteValueError
from vudo.gradient.vector import GradientVector
from vudo.hyphal.announcement import NodeAnnouncement, announce, verify_announcement
from vudo.hyphal.capability import Compute, Gateway, Storage, Witness
from vudo.hyphal.signed import MAX_SIGNED_VALUE, open_sealed, seal
from vudo.identity import Identity

NOW = 1_800_000_000.0
TTL = 60.0


def make_announcement(ident: Identity, ts: float = NOW) -> NodeAnnouncement:
    return NodeAnnouncement(
        node_id=ident.node_id,
        addr="127.0.0.1:7400",
        api="http://127.0.0.1:7500",
        capabilities=(Compute(cores=4, memory_mb=8192), Storage(capacity_mb=1000, iops=100), Gateway(protocols=("http",)), Witness(stake=5)),
        version="0.2.0",
        timestamp=ts,
    )


def reason(value: str, owner: str, now: float = NOW) -> str:
    with pytest.raises(RemoteValueError) as info:
        verify_announcement(value, owner=owner, now=now, ttl=TTL)
    return info.value.reason


def test_valid_announcement_roundtrips() -> None:
    ident = Identity.generate()
    ann = make_announcement(ident)
    assert verify_announcement(announce(ident, ann), owner=ident.node_id, now=NOW + 1, ttl=TTL) == ann


def test_announcing_for_someone_else_is_refused() -> None:
    a, b = Identity.generate(), Identity.generate()
    with pytest.raises(ValueError):
        announce(a, make_announcement(b))


def test_expired_announcement_is_stale() -> None:
    ident = Identity.generate()
    assert reason(announce(ident, make_announcement(ident)), ident.node_id, now=NOW + TTL + 1) == "stale"


def test_far_future_announcement_is_rejected() -> None:
    ident = Identity.generate()
    assert reason(announce(ident, make_announcement(ident, ts=NOW + 3600)), ident.node_id) == "future"


def test_value_signed_by_another_key_is_a_bad_signature() -> None:
    real, forger = Identity.generate(), Identity.generate()
    body = msgspec.json.encode(make_announcement(real))
    forged = base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + base64.urlsafe_b64encode(forger.sign(body)).decode().rstrip("=")
    assert reason(forged, real.node_id) == "bad_signature"


def test_value_naming_another_node_is_wrong_owner() -> None:
    a, b = Identity.generate(), Identity.generate()
    assert reason(announce(a, make_announcement(a)), b.node_id) == "wrong_owner"


@given(st.binary(max_size=64), st.integers(min_value=0, max_value=200))
def test_tampering_with_any_byte_is_rejected(noise: bytes, position: int) -> None:
    ident = Identity.generate()
    value = announce(ident, make_announcement(ident))
    head, _, sig = value.partition(".")
    body = bytearray(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    idx = position % len(body)
    body[idx] ^= (noise[0] if noise else 1) or 1
    tampered = base64.urlsafe_b64encode(bytes(body)).decode().rstrip("=") + "." + sig
    assert reason(tampered, ident.node_id) in ("malformed", "bad_signature", "wrong_owner")


@given(st.text(max_size=300))
def test_garbage_never_verifies(text: str) -> None:
    ident = Identity.generate()
    assert reason(text, ident.node_id) in ("malformed", "oversize")


def test_oversize_value_is_rejected_before_parsing() -> None:
    ident = Identity.generate()
    assert reason("A" * (MAX_SIGNED_VALUE + 1), ident.node_id) == "oversize"


@pytest.mark.parametrize(
    "field,bad",
    [("compute_available", 1.5), ("storage_available", -0.1), ("hops", 300), ("credit_balance", -1.0)],
)
def test_out_of_range_gradient_fields_are_malformed(field: str, bad: object) -> None:
    ident = Identity.generate()
    good = GradientVector(ident.node_id, 0.5, 0.5, 0.5, 1.0, NOW, 0)
    raw = msgspec.to_builtins(good)
    raw[field] = bad
    body = msgspec.json.encode(raw)
    value = base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + base64.urlsafe_b64encode(ident.sign(body)).decode().rstrip("=")
    with pytest.raises(RemoteValueError) as info:
        open_sealed(value, GradientVector, owner=ident.node_id, now=NOW, ttl=TTL)
    assert info.value.reason == "malformed"
    assert field in info.value.detail


def test_gradient_seal_roundtrip() -> None:
    ident = Identity.generate()
    g = GradientVector(ident.node_id, 0.1, 0.2, 0.3, 1.0, NOW, 0)
    assert open_sealed(seal(ident, g), GradientVector, owner=ident.node_id, now=NOW, ttl=TTL) == g
