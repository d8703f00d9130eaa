"""Decoding untrusted JSON into typed msgspec structs, in one place.

Every decoder of outside input (gossip values, graph and parameter files)
goes through :func:`decode_json`, so size limits and error wording are the
same everywhere and no malformed input escapes as an unexpected exception.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

T = TypeVar("T")


class DecodeFailure(ValueError):
    """Input that is not valid JSON of the expected shape (says where)."""


def decode_json(data: bytes | str, kind: type[T], *, what: str, max_bytes: int) -> T:
    if len(data) > max_bytes:
        raise DecodeFailure(f"{what}: {len(data)} bytes, above the {max_bytes}-byte limit")
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as exc:
        raise DecodeFailure(f"{what}: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise DecodeFailure(f"{what}: not valid JSON ({exc})") from None
