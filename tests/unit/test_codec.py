import pytest
from hypothesis import given
from hypothesis import strategies as st

from vudo.codec import DecodeFailure, decode_json
from vudo.physarum.graph import GraphSpec, decode_graph
from vudo.physarum.params import decode_params


@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_a_decode_failure_or_a_valid_graph(data: bytes) -> None:
    try:
        decode_graph(data)
    except ValueError as err:
        assert str(err).startswith(("graph", "food", "edges", "nodes"))


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_other_errors_from_params(data: bytes) -> None:
    try:
        decode_params(data)
    except ValueError:
        pass


def test_invalid_utf8_inside_a_string_is_named() -> None:
    with pytest.raises(DecodeFailure, match="graph: not valid JSON"):
        decode_json(b'{"nodes":[{"id":"\xee\x80"}]}', GraphSpec, what="graph", max_bytes=1000)


def test_oversize_input_is_refused_before_parsing() -> None:
    with pytest.raises(DecodeFailure, match="above the 10-byte limit"):
        decode_json(b"[" * 11, GraphSpec, what="graph", max_bytes=10)
