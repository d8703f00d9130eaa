"""Credit operations in Python: canonical signing bytes, units, signatures (no engine needed)."""

from __future__ import annotations

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from vudo.credits import (
    SIGNING_DOMAIN,
    UNITS_PER_CREDIT,
    CreditTransaction,
    LockRequest,
    PostRequest,
    Proposal,
    SignedVote,
    VoidRequest,
    credits_to_units,
    format_units,
    new_op_id,
)
from vudo.credits.transaction import canonical_bytes
from vudo.identity import Identity


def ident(seed: int) -> Identity:
    return Identity.from_private_key(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


A, B = ident(1), ident(2)


def tx(**changes: object) -> CreditTransaction:
    base = CreditTransaction(id="t1", from_=A.node_id, to=B.node_id, amount=5, fee=1, memo="hi", timestamp=7)
    return msgspec.structs.replace(base, **changes)


def test_canonical_bytes_layout() -> None:
    data = canonical_bytes("transfer", "ab", 1, True)
    assert data == (
        len(SIGNING_DOMAIN).to_bytes(4, "big")
        + SIGNING_DOMAIN
        + (8).to_bytes(4, "big")
        + b"transfer"
        + (2).to_bytes(4, "big")
        + b"ab"
        + (1).to_bytes(8, "big")
        + b"\x01"
    )


@pytest.mark.parametrize("value", [-1, 2**64])
def test_canonical_bytes_refuses_values_outside_u64(value: int) -> None:
    with pytest.raises(ValueError, match="64-bit"):
        canonical_bytes("transfer", value)


def test_signed_transfer_verifies_and_tampering_breaks_it() -> None:
    signed = tx().signed(A)
    assert signed.valid_signature
    assert not msgspec.structs.replace(signed, amount=6).valid_signature
    assert not tx().signed(B).valid_signature  # signed by the wrong node


@given(st.text(max_size=20), st.text(max_size=20))
def test_moving_text_between_fields_changes_the_bytes(id_: str, memo: str) -> None:
    one = tx(id=id_, memo=memo).signing_bytes()
    two = tx(id=id_ + "x", memo=memo[1:] if memo else "x").signing_bytes()
    assert one != two


def test_every_operation_has_distinct_signed_bytes() -> None:
    ops = [
        tx(),
        LockRequest(id="l", owner=A.node_id, amount=1, timestamp=1),
        PostRequest(id="p", lock_id="l", owner=A.node_id, payee=B.node_id, amount=1, timestamp=1),
        VoidRequest(id="v", lock_id="l", owner=A.node_id, timestamp=1),
        Proposal(id="m", proposer=A.node_id, action="mint", target=B.node_id, amount=1, timestamp=1),
        SignedVote(proposal_id="m", voter=A.node_id, approve=True, timestamp=1),
    ]
    encoded = {op.signing_bytes() for op in ops}
    assert len(encoded) == len(ops)
    for op in ops:
        signed = op.signed(A)
        assert len(signed.signature) == 64


def test_transaction_wire_form_uses_the_seed_field_names() -> None:
    data = msgspec.json.encode(tx().signed(A))
    assert b'"from":' in data
    back = msgspec.json.decode(data, type=CreditTransaction)
    assert back == tx().signed(A)


@pytest.mark.parametrize(
    ("text", "units"),
    [("1", UNITS_PER_CREDIT), ("0.000001", 1), ("1.5", 1_500_000), ("0", 0)],
)
def test_credits_to_units(text: str, units: int) -> None:
    assert credits_to_units(text) == units


@pytest.mark.parametrize("text", ["0.0000001", "-1", "abc", "NaN", "1e30"])
def test_credits_to_units_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        credits_to_units(text)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_units_round_trip_through_text(units: int) -> None:
    assert credits_to_units(format_units(units)) == units


def test_op_ids_are_fresh_and_fit_the_ledger() -> None:
    ids = {new_op_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and i.isascii() for i in ids)
