"""A key file an attacker (or an accident) shaped is refused with `SealKeyError`, whose ``path``
names the file and whose ``problem`` says what is wrong; reading one never hangs.

Each case is what someone with write access to the key's directory can leave there: a FIFO, a
directory, a symlink, a file of the wrong mode, a half-written or edited file, the other key of
the pair.
"""

from __future__ import annotations

import errno
import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lifecycle.seal
from lifecycle.seal import MAX_EPOCH, Sealer, SealKeyError, keygen, load_verify_key

#: How long a key file may take to be refused before the test calls it a hang.
HANG = 30.0


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    seal, verify = tmp_path / "s.key", tmp_path / "v.key"
    keygen(seal, verify)
    return seal, verify


def refusal(call: Callable[[], object], path: Path) -> SealKeyError:
    """The `SealKeyError` that ``call`` raises, checked to name ``path``."""
    with pytest.raises(SealKeyError) as raised:
        call()
    assert raised.value.path == str(path)
    assert str(path) in str(raised.value) and raised.value.problem in str(raised.value)
    return raised.value


def rewrite(path: Path, **changes: Any) -> None:
    doc = {**json.loads(path.read_text()), **changes}
    path.write_text(json.dumps({k: v for k, v in doc.items() if v is not ...}))


def test_a_missing_key_file_is_refused_with_the_systems_reason(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.key"
    error = refusal(lambda: load_verify_key(missing), missing)
    assert error.problem == f"cannot be read: {os.strerror(errno.ENOENT)}"


def test_a_directory_in_place_of_a_key_file_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "v.key"
    directory.mkdir(mode=0o700)
    assert refusal(lambda: load_verify_key(directory), directory).problem == (
        "is not a regular file"
    )


def opened_in_a_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("through_a_symlink", [False, True])
def test_a_fifo_in_place_of_a_key_file_is_refused_without_waiting_for_a_writer(
    tmp_path: Path, through_a_symlink: bool
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    path = fifo
    if through_a_symlink:
        path = tmp_path / "v.key"
        path.symlink_to(fifo)
    thread, outcome = opened_in_a_thread(lambda: load_verify_key(path))
    thread.join(HANG)
    hung = thread.is_alive()
    if hung:  # let the blocked open go: a writer appears
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(HANG)
    assert not hung, "opening a FIFO key file waited for a writer"
    (error,) = outcome
    assert isinstance(error, SealKeyError) and error.path == str(path)
    assert error.problem == "is not a regular file"


def test_a_symlink_to_a_private_key_file_is_followed(pair: tuple[Path, Path]) -> None:
    """Secrets are often mounted as symlinks: the mode and the content are the target's."""
    link = pair[1].parent / "link.key"
    link.symlink_to(pair[1])
    assert load_verify_key(link) == load_verify_key(pair[1])


@given(mode=st.integers(0, 0o777).filter(lambda mode: mode & 0o077))
def test_any_key_file_the_group_or_others_may_use_is_refused_naming_its_mode(
    tmp_path_factory: pytest.TempPathFactory, mode: int
) -> None:
    base = tmp_path_factory.mktemp("mode")
    seal, verify = base / "s.key", base / "v.key"
    keygen(seal, verify)
    for path, load in ((verify, load_verify_key), (seal, Sealer)):
        path.chmod(mode)
        error = refusal(lambda: load(path), path)  # noqa: B023 - called at once
        assert f"(mode {mode:o})" in error.problem and "chmod 600" in error.problem


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_a_key_file_only_its_owner_may_use_is_read(pair: tuple[Path, Path], mode: int) -> None:
    pair[1].chmod(mode)
    assert load_verify_key(pair[1]).id == json.loads(pair[1].read_text())["id"]


def test_a_key_file_the_disk_cannot_read_is_refused_with_the_systems_reason(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_read = os.read
    key_inode = pair[1].stat().st_ino

    def failing_read(fd: int, size: int) -> bytes:
        if os.fstat(fd).st_ino == key_inode:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_read(fd, size)

    monkeypatch.setattr(lifecycle.seal.os, "read", failing_read)
    error = refusal(lambda: load_verify_key(pair[1]), pair[1])
    assert error.problem == f"cannot be read: {os.strerror(errno.EIO)}"


@given(cut=st.integers(0, 10**6))
def test_a_half_written_key_file_is_refused(
    tmp_path_factory: pytest.TempPathFactory, cut: int
) -> None:
    base = tmp_path_factory.mktemp("cut")
    seal, verify = base / "s.key", base / "v.key"
    keygen(seal, verify)
    for path, load in ((verify, load_verify_key), (seal, Sealer)):
        content = path.read_bytes().rstrip(b"\n")
        path.write_bytes(content[: cut % len(content)])
        refusal(lambda: load(path), path)  # noqa: B023 - called at once


def test_a_key_file_that_is_not_json_says_so(pair: tuple[Path, Path]) -> None:
    pair[1].write_bytes(b"\xff\xfe not a key")
    error = refusal(lambda: load_verify_key(pair[1]), pair[1])
    assert error.problem == "is not a lifecycle key file (not JSON)"


def test_each_key_of_a_pair_is_refused_in_place_of_the_other_naming_its_format(
    pair: tuple[Path, Path],
) -> None:
    """The sealing key is no verification key (it would verify nothing honestly), and the
    verification key given to a writer would sign with ``K[0]``: each is refused by format."""
    seal, verify = pair
    error = refusal(lambda: load_verify_key(seal), seal)
    assert error.problem == "is not a lifecycle-verify-key file (format 'lifecycle-seal-key')"
    error = refusal(lambda: Sealer(verify), verify)
    assert error.problem == "is not a lifecycle-seal-key file (format 'lifecycle-verify-key')"


@pytest.mark.parametrize("document", [[], ["format"], "lifecycle-verify-key", 7, None])
def test_a_key_file_holding_json_that_is_no_object_is_refused(
    pair: tuple[Path, Path], document: object
) -> None:
    pair[1].write_text(json.dumps(document))
    error = refusal(lambda: load_verify_key(pair[1]), pair[1])
    assert error.problem == "is not a lifecycle-verify-key file (format None)"


@pytest.mark.parametrize("version", [..., 2, 0, "1", 1.0, True, None])
def test_a_key_file_of_another_version_is_refused(pair: tuple[Path, Path], version: object) -> None:
    rewrite(pair[1], version=version)
    error = refusal(lambda: load_verify_key(pair[1]), pair[1])
    assert error.problem == f"has unsupported version {None if version is ... else version!r}"


@pytest.mark.parametrize("key", [..., None, 7, "00" * 31, "00" * 33, "zz" * 32, "0" * 63])
def test_a_key_file_without_a_32_byte_hex_key_is_refused(
    pair: tuple[Path, Path], key: object
) -> None:
    rewrite(pair[1], key=key)
    error = refusal(lambda: load_verify_key(pair[1]), pair[1])
    assert error.problem == "has no valid key (expected 32 bytes in hex)"


@pytest.mark.parametrize("ident", [..., None, 7])
def test_a_key_file_without_a_key_id_is_refused(pair: tuple[Path, Path], ident: object) -> None:
    rewrite(pair[1], id=ident)
    assert refusal(lambda: load_verify_key(pair[1]), pair[1]).problem == "has no key id"


def test_a_verification_key_edited_to_another_key_is_refused(pair: tuple[Path, Path]) -> None:
    """Whoever swaps the auditor's key for their own must also match the id the journal
    names; the file's own id no longer matches its key."""
    rewrite(pair[1], key="ab" * 32)
    error = refusal(lambda: load_verify_key(pair[1]), pair[1])
    assert error.problem == "its key does not match its id (the file was edited)"
    assert "ab" * 32 not in str(error)


@pytest.mark.parametrize("epoch", [..., None, -1, "3", 2.0, True, MAX_EPOCH, MAX_EPOCH + 1])
def test_a_sealing_key_with_an_epoch_out_of_range_is_refused_naming_the_range(
    pair: tuple[Path, Path], epoch: object
) -> None:
    seal = pair[0]
    rewrite(seal, epoch=epoch)
    before = seal.read_bytes()
    error = refusal(lambda: Sealer(seal), seal)
    shown = None if epoch is ... else epoch
    found = re.fullmatch(r"has a bad epoch (.+) \(0 to (\d+)\)", error.problem)
    assert found is not None and found[1] == repr(shown)
    assert seal.read_bytes() == before  # a refused file is left as it was
    # The range named is the one a sealer accepts: its top opens, one more does not.
    top = int(found[2])
    rewrite(seal, epoch=top)
    Sealer(seal).close()
    rewrite(seal, epoch=top + 1)
    refusal(lambda: Sealer(seal), seal)
