"""The sealer signs line ``j`` of a run (the header is line 0) with ``K[start + j // every]``,
each MAC chained to the one before; the verifier derives the same keys from ``K[0]``, forward
only, up to `MAX_EPOCH`, and the writer stops there.

Every MAC is checked against what a verifier computes from the verification key alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lifecycle.seal
from lifecycle.seal import (
    MAX_EPOCH,
    EpochKeys,
    Sealer,
    SealKeyError,
    VerifyKey,
    keygen,
    line_mac,
    load_verify_key,
    next_key,
)


def fresh_pair(base: Path) -> tuple[Path, VerifyKey]:
    seal, verify = base / "s.key", base / "v.key"
    keygen(seal, verify)
    return seal, load_verify_key(verify)


def hashes(count: int) -> list[str]:
    return [f"{index:064x}" for index in range(count)]


def verified(verify: VerifyKey, start: int, every: int, lines: list[str], macs: list[str]) -> bool:
    keys = EpochKeys(verify, start)
    previous = ""
    for number, (line_hash, mac) in enumerate(zip(lines, macs, strict=True)):
        if line_mac(keys.key(start + number // every), previous, line_hash) != mac:
            return False
        previous = mac
    return True


@given(every=st.integers(1, 5), count=st.integers(1, 16))
def test_each_line_is_signed_with_the_key_of_its_epoch(
    tmp_path_factory: pytest.TempPathFactory, every: int, count: int
) -> None:
    seal, verify = fresh_pair(tmp_path_factory.mktemp("sign"))
    sealer = Sealer(seal, every)
    lines = hashes(count)
    macs = [sealer.sign(line_hash) for line_hash in lines]
    assert sealer.mac == macs[-1]
    assert sealer.epoch == (count - 1) // every and sealer.start == 0
    assert sealer.in_first_epoch == (count <= every)
    assert verified(verify, 0, every, lines, macs)
    # The file on disk is one epoch ahead of the key in use.
    assert json.loads(seal.read_text())["epoch"] == sealer.epoch + 1
    sealer.close()


def test_a_sealer_opened_again_continues_from_the_epoch_on_disk(tmp_path: Path) -> None:
    seal, verify = fresh_pair(tmp_path)
    first = Sealer(seal, 2)
    for line_hash in hashes(3):
        first.sign(line_hash)
    first.close()
    second = Sealer(seal, 2)
    assert second.start == 2 and second.in_first_epoch
    lines = hashes(2)
    assert verified(verify, 2, 2, lines, [second.sign(line_hash) for line_hash in lines])


def test_restart_signs_again_from_the_header_with_the_same_macs(tmp_path: Path) -> None:
    seal, _ = fresh_pair(tmp_path)
    sealer = Sealer(seal, 3)
    lines = hashes(3)
    before = [sealer.sign(line_hash) for line_hash in lines]
    sealer.restart()
    assert sealer.mac == ""
    assert [sealer.sign(line_hash) for line_hash in lines] == before
    assert sealer.in_first_epoch  # three lines are still the first epoch's


def test_restart_after_the_first_epoch_is_refused_saying_its_key_is_gone(tmp_path: Path) -> None:
    seal, _ = fresh_pair(tmp_path)
    sealer = Sealer(seal, 1)
    sealer.sign("0" * 64)
    sealer.sign("1" * 64)
    with pytest.raises(RuntimeError, match="first epoch's key is gone"):
        sealer.restart()


def test_a_closed_sealer_refuses_to_sign(tmp_path: Path) -> None:
    seal, _ = fresh_pair(tmp_path)
    sealer = Sealer(seal)
    sealer.close()
    sealer.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        sealer.sign("0" * 64)


# -- the end of the key chain -------------------------------------------------------------------


def test_a_writer_signs_up_to_the_last_epoch_then_refuses_naming_its_key_file(
    tmp_path: Path,
) -> None:
    seal, _ = fresh_pair(tmp_path)
    doc = json.loads(seal.read_text())
    seal.write_text(json.dumps({**doc, "epoch": MAX_EPOCH - 1}))
    sealer = Sealer(seal, 2)
    sealer.sign("0" * 64)
    sealer.sign("1" * 64)  # still epoch MAX_EPOCH - 1
    assert json.loads(seal.read_text())["epoch"] == MAX_EPOCH
    with pytest.raises(SealKeyError) as raised:
        sealer.sign("2" * 64)  # would need epoch MAX_EPOCH, whose successor does not exist
    assert raised.value.path == str(seal)
    assert raised.value.problem == f"the key chain is used up (epoch {MAX_EPOCH})"


@given(bound=st.integers(0, 40), start=st.integers(0, 40))
def test_a_verifier_derives_keys_up_to_max_epoch_and_no_further(bound: int, start: int) -> None:
    """`MAX_EPOCH` bounds the work a header can ask for: the bound itself is a valid epoch."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lifecycle.seal, "MAX_EPOCH", bound)
        check_the_bound(bound, start)


def check_the_bound(bound: int, start: int) -> None:
    verify = VerifyKey("id", bytes(32))
    if start > bound:
        with pytest.raises(ValueError, match=rf"epoch {start} is out of range \(0 to {bound}\)"):
            EpochKeys(verify, start)
        return
    keys = EpochKeys(verify, start)
    expected = verify.first
    for _ in range(bound):
        expected = next_key(expected)
    assert keys.key(bound) == expected
    with pytest.raises(ValueError, match=re.escape(f"no key for epoch {bound + 1}")):
        keys.key(bound + 1)
    assert keys.key(bound) == expected  # a refused epoch changes nothing


def test_a_verifier_refuses_a_negative_start_epoch() -> None:
    with pytest.raises(ValueError, match=r"epoch -1 is out of range"):
        EpochKeys(VerifyKey("id", bytes(32)), -1)
