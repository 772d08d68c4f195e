"""A key file is a few hundred bytes: one larger than `MAX_KEY_FILE_BYTES` is refused as too
big, never read in part (a valid key followed by anything is no key file) nor called "not
JSON" when it is JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lifecycle.seal import MAX_KEY_FILE_BYTES, SealKeyError, keygen, load_verify_key


def padded(path: Path, size: int, tail: bytes = b"") -> None:
    """Rewrite the key file at ``path`` as its JSON, spaces, then ``tail``: ``size`` bytes."""
    document = json.dumps(json.loads(path.read_text())).encode("ascii")
    path.write_bytes(document + b" " * (size - len(document) - len(tail)) + tail)


@pytest.fixture
def verify(tmp_path: Path) -> Path:
    keygen(tmp_path / "s.key", tmp_path / "v.key")
    return tmp_path / "v.key"


def test_a_key_file_of_the_largest_size_is_read(verify: Path) -> None:
    ident = json.loads(verify.read_text())["id"]
    padded(verify, MAX_KEY_FILE_BYTES)
    assert load_verify_key(verify).id == ident


@pytest.mark.parametrize("tail", [b"", b"}", b"garbage"])
def test_a_key_file_one_byte_too_big_is_refused_as_too_big(verify: Path, tail: bytes) -> None:
    padded(verify, MAX_KEY_FILE_BYTES + 1, tail)
    with pytest.raises(SealKeyError) as raised:
        load_verify_key(verify)
    assert raised.value.path == str(verify)
    assert raised.value.problem == f"is too big for a key file (over {MAX_KEY_FILE_BYTES} bytes)"


def test_a_valid_key_followed_by_more_than_fits_is_refused(verify: Path) -> None:
    padded(verify, 3 * MAX_KEY_FILE_BYTES, b"garbage")
    with pytest.raises(SealKeyError, match="too big"):
        load_verify_key(verify)
