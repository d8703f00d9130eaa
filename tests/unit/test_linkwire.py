"""The hyphal wire messages: round trips and bounded, named failures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vudo.errors import RemoteValueError
from vudo.hyphal.linkwire import (
    MAX_MESSAGE,
    Goodbye,
    GoodbyeAck,
    Hello,
    HelloAck,
    Introduction,
    IntroductionAsk,
    Introductions,
    Refusal,
    decode_request,
    decode_response,
    encode,
)


@pytest.mark.parametrize("message", [Hello(version=1, announcement="x.y", seeks=("storage",)), IntroductionAsk(limit=8), Goodbye(reason="pruned")])
def test_requests_round_trip(message: Hello | IntroductionAsk | Goodbye) -> None:
    assert decode_request(encode(message)) == message


@pytest.mark.parametrize("message", [HelloAck(version=1), Refusal(reason="full"), GoodbyeAck(), Introductions(peers=(Introduction("n", "a.b"),))])
def test_responses_round_trip(message: HelloAck | Refusal | GoodbyeAck | Introductions) -> None:
    assert decode_response(encode(message)) == message


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "malformed"),
        (b'{"type":"hello_ack","version":1}', "malformed"),  # a response where a request belongs
        (b'{"type":"introduction_ask","limit":9}', "malformed"),
        (b'{"type":"hello","version":1,"announcement":""}', "malformed"),
        (b'{"type":"hello","version":7,"announcement":"a"}', "version"),
        (b"x" * (MAX_MESSAGE + 1), "oversize"),
    ],
)
def test_bad_requests_are_named(payload: bytes, reason: str) -> None:
    with pytest.raises(RemoteValueError) as err:
        decode_request(payload)
    assert err.value.reason == reason


def test_bad_responses_are_named() -> None:
    with pytest.raises(RemoteValueError) as err:
        decode_response(b'{"type":"hello_ack","version":3}')
    assert err.value.reason == "version"
    too_many = b'{"type":"introductions","peers":[' + b",".join([b'{"node_id":"n","announcement":"a"}'] * 9) + b"]}"
    with pytest.raises(RemoteValueError) as err:
        decode_response(too_many)
    assert err.value.reason == "malformed"


@given(st.binary(max_size=4096))
def test_arbitrary_bytes_only_ever_raise_remote_value_error(payload: bytes) -> None:
    for decode in (decode_request, decode_response):
        try:
            decode(payload)
        except RemoteValueError as err:
            assert err.reason in ("malformed", "oversize", "version")
