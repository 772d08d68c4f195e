"""Key files are written so that a crash or a full disk never leaves a key readable by
others, a half-written key in place, or an old key overwritten: `keygen` creates both files
exclusively (a half-made pair is removed), and the sealer rewrites its file through a private
temporary file beside it. Every failure is a `SealKeyError` naming the file and the system's
reason.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tempfile
from pathlib import Path

import pytest

import lifecycle.seal
from lifecycle.seal import Sealer, SealKeyError, key_id, keygen, load_verify_key


def no_space(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def failing_unlink(path: str | os.PathLike[str]) -> None:
    raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))


# -- keygen ------------------------------------------------------------------------------------


def test_a_new_pair_starts_at_epoch_zero_with_the_verification_key_itself(tmp_path: Path) -> None:
    seal, verify = tmp_path / "s.key", tmp_path / "v.key"
    ident = keygen(seal, verify)
    sealing, verifying = json.loads(seal.read_text()), json.loads(verify.read_text())
    assert sealing["epoch"] == 0 and sealing["key"] == verifying["key"]
    assert sealing["id"] == verifying["id"] == ident == key_id(bytes.fromhex(verifying["key"]))
    assert load_verify_key(verify).id == ident
    assert re.fullmatch(r"[0-9a-f]{32}", ident)  # what the journal header names the key by


def test_keygen_names_the_file_when_both_keys_would_share_it(tmp_path: Path) -> None:
    with pytest.raises(SealKeyError) as raised:
        keygen(tmp_path / "k", tmp_path / "." / "k")
    assert raised.value.path == str(tmp_path / "k")
    assert "two files" in raised.value.problem
    assert not (tmp_path / "k").exists()


@pytest.mark.parametrize("existing", ["seal", "verify"])
def test_keygen_names_the_key_file_that_already_exists_and_leaves_no_half_pair(
    tmp_path: Path, existing: str
) -> None:
    paths = {"seal": tmp_path / "s.key", "verify": tmp_path / "v.key"}
    paths[existing].write_text("an older key")
    with pytest.raises(SealKeyError) as raised:
        keygen(paths["seal"], paths["verify"])
    assert raised.value.path == str(paths[existing])
    assert raised.value.problem == "already exists; refusing to overwrite a key"
    assert paths[existing].read_text() == "an older key"
    assert sorted(p.name for p in tmp_path.iterdir()) == [paths[existing].name]


def test_keygen_in_a_missing_directory_names_the_file_and_the_systems_reason(
    tmp_path: Path,
) -> None:
    seal = tmp_path / "missing" / "s.key"
    with pytest.raises(SealKeyError) as raised:
        keygen(seal, tmp_path / "v.key")
    assert raised.value.path == str(seal)
    assert raised.value.problem == f"cannot be created: {os.strerror(errno.ENOENT)}"
    assert list(tmp_path.iterdir()) == []  # the verification key made first is removed


def test_a_key_that_cannot_be_written_out_leaves_no_file_and_names_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle.seal.os, "fsync", no_space)
    verify = tmp_path / "v.key"
    with pytest.raises(SealKeyError) as raised:
        keygen(tmp_path / "s.key", verify)
    assert raised.value.path == str(verify)
    assert raised.value.problem == f"cannot be written: {os.strerror(errno.ENOSPC)}"
    assert list(tmp_path.iterdir()) == []


def test_a_half_made_pair_that_cannot_be_removed_still_reports_why_keygen_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "s.key").write_text("an older key")
    monkeypatch.setattr(lifecycle.seal.os, "unlink", failing_unlink)
    with pytest.raises(SealKeyError, match="already exists"):
        keygen(tmp_path / "s.key", tmp_path / "v.key")


def test_a_key_write_failure_is_reported_even_when_its_file_cannot_be_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle.seal.os, "fsync", no_space)
    monkeypatch.setattr(lifecycle.seal.os, "unlink", failing_unlink)
    with pytest.raises(SealKeyError, match="cannot be written"):
        keygen(tmp_path / "s.key", tmp_path / "v.key")


# -- the sealer's rewrites ---------------------------------------------------------------------


@pytest.fixture
def seal(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "s.key"
    path.parent.mkdir()
    keygen(path, tmp_path / "v.key")
    return path


def test_the_key_file_is_replaced_by_a_private_hidden_file_from_its_own_directory(
    seal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename within one directory is atomic (no copy across file systems), and a file
    left by a crash before it is hidden and says what it is."""
    real_replace = os.replace
    replaced: list[tuple[str, int]] = []

    def spy(source: str, target: str) -> None:
        replaced.append((source, stat.S_IMODE(os.stat(source).st_mode)))
        real_replace(source, target)

    monkeypatch.setattr(lifecycle.seal.os, "replace", spy)
    Sealer(seal).close()
    ((source, mode),) = replaced
    assert os.path.dirname(source) == str(seal.parent) and mode == 0o600
    name = os.path.basename(source)
    assert name.startswith(".seal.") and name.endswith(".tmp")
    assert sorted(p.name for p in seal.parent.iterdir()) == ["s.key"]


def test_rewriting_the_key_file_does_not_use_the_system_temporary_directory(
    seal: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-temporary-directory"))
    Sealer(seal).close()
    assert json.loads(seal.read_text())["epoch"] == 1


def test_a_key_file_whose_directory_is_full_is_refused_naming_it(
    seal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = seal.read_bytes()
    monkeypatch.setattr(lifecycle.seal.tempfile, "mkstemp", no_space)
    with pytest.raises(SealKeyError) as raised:
        Sealer(seal)
    assert raised.value.path == str(seal)
    assert raised.value.problem == f"cannot be rewritten: {os.strerror(errno.ENOSPC)}"
    assert seal.read_bytes() == before


def test_a_failed_rewrite_is_reported_even_when_its_temporary_file_cannot_be_removed(
    seal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle.seal.os, "replace", no_space)
    monkeypatch.setattr(lifecycle.seal.os, "unlink", failing_unlink)
    with pytest.raises(SealKeyError) as raised:
        Sealer(seal)
    assert raised.value.path == str(seal)
    assert raised.value.problem == f"cannot be rewritten: {os.strerror(errno.ENOSPC)}"


def test_a_failed_rewrite_removes_its_temporary_file(
    seal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle.seal.os, "replace", no_space)
    with pytest.raises(SealKeyError, match="cannot be rewritten"):
        Sealer(seal)
    assert sorted(p.name for p in seal.parent.iterdir()) == ["s.key"]
