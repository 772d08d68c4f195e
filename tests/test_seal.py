"""Sealed journals: `lifecycle keygen`, ``--seal``, ``audit --verify-key``, and the attacks.

Each property of the seal is pinned through the command line: a forger who recomputes every
unkeyed hash, one who holds a copy of the sealing key taken mid-run, a cut at a line boundary,
another run's journal swapped in. The forgers here use only what such an attacker has: the
file, `lifecycle.journal.chain_hash`, and (for forward security) the stolen key state.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.cli import UNSEALED, main
from lifecycle.demo import DemoService
from lifecycle.journal import (
    FORMAT_VERSION,
    Journal,
    Transition,
    canonical,
    chain_hash,
    read_journal,
)
from lifecycle.outcome import outcome
from lifecycle.seal import (
    EpochKeys,
    Sealer,
    SealKeyError,
    keygen,
    line_mac,
    load_verify_key,
    next_key,
)

# -- what an attacker works with ---------------------------------------------------------------


def objects_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def body_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("hash", "mac")}


def forge(
    objs: list[dict[str, Any]],
    key_for: Callable[[int], bytes | None] = lambda line: None,
) -> bytes:
    """The file of ``objs`` with every hash recomputed (what anyone can do; a seal line's
    head too), and the MAC of each line recomputed where ``key_for(line number)`` gives a key
    (else kept as it was)."""
    out = []
    previous, mac = "", ""
    for number, obj in enumerate(objs, start=1):
        body = body_of(obj)
        if "seal" in body and "seq" not in body and "format" not in body:
            body["seal"] = {**body["seal"], "head": previous}
        previous = chain_hash(previous, canonical(body))
        line = {**body, "hash": previous}
        if "mac" in obj:
            key = key_for(number)
            line["mac"] = obj["mac"] if key is None else line_mac(key, mac, previous)
            mac = line["mac"]
        out.append(canonical(line) + "\n")
    return "".join(out).encode()


def key_state(path: Path) -> tuple[int, bytes]:
    """What someone who copies the sealing key file learns: its epoch and key."""
    doc = json.loads(path.read_text())
    return int(doc["epoch"]), bytes.fromhex(doc["key"])


def audit(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["audit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def audit_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = audit(capsys, "--json", *argv)
    return code, json.loads(out)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    seal, verify = tmp_path / "s.key", tmp_path / "v.key"
    assert main(["keygen", str(seal), str(verify)]) == 0
    return seal, verify


def demo(
    capsys: pytest.CaptureFixture[str], journal: Path, seal: Path | None, *extra: str
) -> tuple[str, str]:
    """Run the demo (sealed if ``seal``); returns the run id and chain head it printed."""
    argv = ["demo", "--duration", "0.2", "--journal", str(journal), *extra]
    if seal is not None:
        argv += ["--seal", str(seal)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    found = re.search(r"run id ([0-9a-f]{32}), chain head ([0-9a-f]{64})", err)
    assert found is not None, err
    return found[1], found[2]


@pytest.fixture
def sealed(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> tuple[Path, Path]:
    """A sealed demo journal (epochs of 4 lines, so it spans many) and its verification key."""
    journal = tmp_path / "run.jsonl"
    demo(capsys, journal, keys[0], "--seal-epoch", "4")
    return journal, keys[1]


def record_lines(objs: list[dict[str, Any]]) -> list[int]:
    """The 0-based indexes of the transition records."""
    return [i for i, obj in enumerate(objs) if "seq" in obj]


# -- keygen ------------------------------------------------------------------------------------


def test_keygen_makes_two_private_files_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seal, verify = tmp_path / "s.key", tmp_path / "v.key"
    assert main(["keygen", str(seal), str(verify)]) == 0
    out, _ = capsys.readouterr()
    for path in (seal, verify):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = json.loads(verify.read_text())["key"]
    assert secret not in out
    before = seal.read_bytes(), verify.read_bytes()
    assert main(["keygen", str(seal), str(tmp_path / "other.key")]) == 1
    assert "already exists; refusing to overwrite" in capsys.readouterr().err
    assert (seal.read_bytes(), verify.read_bytes()) == before
    assert not (tmp_path / "other.key").exists()


def test_keygen_refuses_one_file_for_both_keys(tmp_path: Path) -> None:
    with pytest.raises(SealKeyError, match="two files"):
        keygen(tmp_path / "k", tmp_path / "k")


@pytest.mark.parametrize("which", ["seal", "verify"])
def test_a_key_file_readable_by_others_is_refused_with_a_clear_error(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str], which: str
) -> None:
    seal, verify = keys
    journal = tmp_path / "run.jsonl"
    if which == "verify":
        demo(capsys, journal, seal)
        verify.chmod(0o644)
        code, _, err = audit(capsys, str(journal), "--verify-key", str(verify))
    else:
        seal.chmod(0o640)
        code = main(["demo", "--duration", "0.1", "--journal", str(journal), "--seal", str(seal)])
        err = capsys.readouterr().err
    assert code == 2
    assert "readable or writable by group or others" in err and "chmod 600" in err
    assert "Traceback" not in err


def test_seal_without_a_journal_is_a_usage_error(
    keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--duration", "0.1", "--seal", str(keys[0])]) == 2
    assert "--seal needs --journal" in capsys.readouterr().err


# -- a sealed run, audited ---------------------------------------------------------------------


def test_a_sealed_demo_audits_clean_and_sealed_with_its_verification_key(
    sealed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    journal, verify = sealed
    code, out, err = audit(capsys, str(journal), "--verify-key", str(verify))
    assert code == 0 and out.startswith("outcome:"), out  # no violation listed
    assert "clean; sealed: every line's MAC verified" in err
    code, doc = audit_json(capsys, str(journal), "--verify-key", str(verify))
    assert code == 0 and doc["clean"] is True and doc["sealed"] is True
    assert doc["violations"] == [] and doc["complete"] is True
    # Without the key it is still clean, but nothing says sealed.
    code, doc = audit_json(capsys, str(journal))
    assert code == 0 and doc["sealed"] is False


def test_a_sealed_journal_ends_with_a_seal_line_counting_its_records(
    sealed: tuple[Path, Path],
) -> None:
    objs = objects_of(sealed[0])
    header, records = read_journal(sealed[0])
    assert header["seal"]["every"] == 4 and header["version"] == FORMAT_VERSION
    assert objs[-1]["seal"] == {"records": len(records), "head": objs[-2]["hash"]}
    assert all(isinstance(obj.get("mac"), str) for obj in objs)


def test_key_material_never_enters_the_journal_or_the_output(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    seal, verify = keys
    secrets = {json.loads(verify.read_text())["key"], json.loads(seal.read_text())["key"]}
    journal = tmp_path / "run.jsonl"
    argv = ["demo", "--duration", "0.2", "--journal", str(journal), "--seal", str(seal)]
    assert main([*argv, "--seal-epoch", "2"]) == 0
    printed = "".join(capsys.readouterr())
    later = {json.loads(seal.read_text())["key"]}
    code, out, err = audit(capsys, str(journal), "--verify-key", str(verify))
    assert code == 0
    text = journal.read_text()
    for secret in secrets | later:
        assert secret not in text and secret not in printed + out + err


# -- property 1: without the key, any change is detected ---------------------------------------


def test_a_forger_who_recomputes_every_hash_is_caught_naming_the_line(
    sealed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    journal, verify = sealed
    objs = objects_of(journal)
    target = record_lines(objs)[3]
    objs[target]["thread"] = objs[target]["thread"][:-1] + "X"  # one byte
    journal.write_bytes(forge(objs))
    # The unkeyed chain is whole again: only the seal sees the forgery.
    code, out, _ = audit(capsys, str(journal))
    assert code == 0
    code, out, _ = audit(capsys, str(journal), "--verify-key", str(verify))
    assert code == 1
    assert out.splitlines()[0].startswith(f"line {target + 1}: seal: ")


def test_turning_a_crash_into_a_clean_stop_fools_the_unsealed_audit_only(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The forger script of the issue: rewrite the failed service's end as a clean stop and
    recompute the chain. Unsealed, the audit cannot tell and says so; sealed, it is caught."""
    for seal in (None, keys[0]):
        journal = tmp_path / f"crash-{seal is None}.jsonl"
        argv = ["run", "--quiet", "--journal", str(journal), "tests.services:Crashing"]
        assert main([*argv, *(["--seal", str(seal)] if seal else [])]) == 1
        capsys.readouterr()
        objs = objects_of(journal)
        for obj in objs:
            if obj.get("dest") == "failed":
                obj["dest"], obj["cause"] = "stopped", None
                obj["trigger"] = "finish" if obj["source"] == "stopping" else obj["trigger"]
        journal.write_bytes(forge(objs))
        if seal is None:
            code, _, err = audit(capsys, str(journal))
            assert UNSEALED in err  # what a clean unsealed audit proves, said plainly
        else:
            code, out, err = audit(capsys, str(journal), "--verify-key", str(keys[1]))
            assert code == 1 and ": seal: " in out


def test_stripping_the_seal_is_caught_with_the_verification_key(
    sealed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    journal, verify = sealed
    objs = [body_of(obj) for obj in objects_of(journal)[:-1]]
    del objs[0]["seal"]
    journal.write_bytes(forge(objs))
    code, out, _ = audit(capsys, str(journal), "--verify-key", str(verify))
    assert code == 1 and out.startswith("line 1: seal: <header>: expected a sealed journal")


def test_a_journal_sealed_with_another_key_is_refused(
    tmp_path: Path, sealed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    keygen(other / "s.key", other / "v.key")
    code, out, _ = audit(capsys, str(sealed[0]), "--verify-key", str(other / "v.key"))
    assert code == 1 and "expected the journal to be sealed with key" in out


@given(st.data())
def test_any_one_byte_change_to_a_sealed_journal_is_detected(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    base = tmp_path_factory.mktemp("flip")
    seal, verify = base / "s.key", base / "v.key"
    keygen(seal, verify)
    journal = base / "run.jsonl"
    with Journal(journal, seal=seal, seal_epoch=3) as writer:
        writer.describe_tasks({"A": {"deps": []}})
        for trigger, source, dest in [
            ("create", "registered", "created"),
            ("init", "created", "initialized"),
            ("start", "initialized", "running"),
            ("stop", "running", "stopping"),
            ("finish", "stopping", "stopped"),
        ]:
            writer.record("task", "A", trigger, source, dest, True)
    content = bytearray(journal.read_bytes())
    header_end = content.index(b"\n")
    # Drawn as fractions of what varies from run to run (the file's length, its bytes).
    at = header_end + 1 + data.draw(st.integers(0, 10**6)) % (len(content) - header_end - 2)
    new = 0x20 + data.draw(st.integers(0, 94))
    content[at] = new if new != content[at] else 0x20 + (new - 0x20 + 1) % 95
    journal.write_bytes(bytes(content))
    from lifecycle.audit import audit as audit_file

    report = audit_file(journal, verify_key=load_verify_key(verify))
    assert report.violations and not report.sealed


# -- property 2: forward security --------------------------------------------------------------


def run_stolen_midway(tmp_path: Path, keys: tuple[Path, Path], after: int) -> tuple[Path, Path]:
    """A sealed demo run whose key state file is copied once ``after`` records are written
    (what someone who seizes the machine then holds); returns the journal and the copy."""
    seal, _ = keys
    journal, stolen = tmp_path / "run.jsonl", tmp_path / "stolen.key"
    writer = Journal(journal, seal=seal, seal_epoch=4)

    def steal(record: Transition) -> None:
        if record.seq == after:
            shutil.copy(seal, stolen)

    writer.subscribe(steal)
    assert DemoService({"duration": 0.2}, journal=writer).run() == 0
    writer.close()
    return journal, stolen


@pytest.mark.parametrize("how", ["alter", "insert"])
def test_a_stolen_key_state_cannot_alter_or_insert_a_record_of_an_earlier_epoch(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str], how: str
) -> None:
    journal, stolen = run_stolen_midway(tmp_path, keys, after=12)
    epoch, key = key_state(stolen)
    objs = objects_of(journal)
    start, every = objs[0]["seal"]["epoch"], objs[0]["seal"]["every"]
    line_epoch = {n: start + (n - 1) // every for n in range(1, len(objs) + 2)}
    earlier = [i for i in record_lines(objs) if line_epoch[i + 1] < epoch]
    assert len(earlier) >= 3 and epoch > start
    target = earlier[2]
    if how == "alter":
        objs[target]["thread"] = "forged"
    else:
        objs.insert(target, {**objs[target - 1], "thread": "forged"})
        line_epoch = {n: start + (n - 1) // every for n in range(1, len(objs) + 2)}

    # The attacker's best: the lines before the change keep their valid MACs; from it on,
    # every MAC is recomputed with the keys the copy gives (its epoch's and every later one),
    # and lines of earlier epochs get the copied key too.
    derived = {epoch: key}
    for later in range(epoch + 1, max(line_epoch.values()) + 1):
        derived[later] = next_key(derived[later - 1])

    def key_for(number: int) -> bytes | None:
        return None if number <= target else derived.get(line_epoch[number], key)

    journal.write_bytes(forge(objs, key_for))
    code, out, _ = audit(capsys, str(journal), "--verify-key", str(keys[1]))
    assert code == 1
    assert out.splitlines()[0].startswith(f"line {target + 1}: seal: ")


def test_relabelling_a_whole_journal_into_a_stolen_epoch_is_caught_by_its_chain_head(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """With a stolen key one can write a whole new journal in the stolen epoch and later
    ones; its MACs verify, but the run printed its chain head, and the forgery's differs."""
    journal, stolen = run_stolen_midway(tmp_path, keys, after=12)
    real_head = objects_of(journal)[-1]["hash"]
    epoch, key = key_state(stolen)
    objs = objects_of(journal)
    objs[0]["seal"] = {**objs[0]["seal"], "epoch": epoch, "every": 10**6}
    target = record_lines(objs)[2]
    objs[target]["thread"] = "forged"
    journal.write_bytes(forge(objs, lambda n: key))
    code, _, _ = audit(capsys, str(journal), "--verify-key", str(keys[1]))
    assert code == 0  # the limit the README states: the MACs alone cannot tell
    code, out, _ = audit(
        capsys, str(journal), "--verify-key", str(keys[1]), "--expect-head", real_head
    )
    assert code == 1 and "run: <journal>: expected the chain head" in out


def test_the_key_state_on_disk_is_always_ahead_of_every_key_used(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    seal, verify = keys
    first = load_verify_key(verify).first
    journal = tmp_path / "j.jsonl"
    sealer_epochs = []
    writer = Journal(journal, seal=seal, seal_epoch=2)
    writer.subscribe(lambda record: sealer_epochs.append(key_state(seal)[0]))
    for index in range(7):
        writer.record("task", f"T{index}", "create", "registered", "created", True)
    writer.close()
    assert stat.S_IMODE(seal.stat().st_mode) == 0o600
    # Line n (1-based) is signed in epoch (n - 1) // 2; the file already holds the next one.
    lines = len(objects_of(journal))
    used = (lines - 1) // 2
    state_epoch, state_key = key_state(seal)
    assert state_epoch == used + 1
    expected = first
    for _ in range(state_epoch):
        expected = next_key(expected)
    assert state_key == expected
    assert all(epoch >= 1 for epoch in sealer_epochs)


def test_a_later_run_continues_from_the_key_state_on_disk(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    seal, verify = keys
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    demo(capsys, one, seal)
    after_one = key_state(seal)[0]
    demo(capsys, two, seal)
    assert objects_of(two)[0]["seal"]["epoch"] == after_one  # no key signs two runs
    for journal in (one, two):
        assert audit(capsys, str(journal), "--verify-key", str(verify))[0] == 0


# -- property 3: truncation --------------------------------------------------------------------


def test_a_sealed_journal_cut_at_a_line_boundary_is_incomplete_unless_partial(
    sealed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    journal, verify = sealed
    lines = journal.read_text().splitlines(keepends=True)
    kept = lines[:-6]  # the seal line and the last records gone
    journal.write_text("".join(kept))
    last_seq = json.loads(kept[-1])["seq"]
    code, out, err = audit(capsys, str(journal), "--verify-key", str(verify))
    assert code == 1
    assert "end: seal: <journal>: expected the final seal line" in out
    assert f"the last of seq {last_seq}" in out
    code, out, err = audit(capsys, str(journal), "--verify-key", str(verify), "--partial")
    assert code == 0
    assert f"verified {len(kept) - 1} record(s), last seq {last_seq}" in err
    assert "no seal line: cut short" in err


def test_a_forged_seal_line_after_a_cut_is_caught(
    sealed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    journal, verify = sealed
    objs = objects_of(journal)
    kept = objs[:-6]
    kept.append({"seal": {"records": len(kept) - 1, "head": ""}, "mac": objs[-1]["mac"]})
    journal.write_bytes(forge(kept))
    code, out, _ = audit(capsys, str(journal), "--verify-key", str(verify))
    assert code == 1 and f"line {len(kept)}: seal: " in out


def test_lines_after_the_seal_line_are_reported(
    sealed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    journal, verify = sealed
    objs = objects_of(journal)
    objs.append(objs[-2])
    journal.write_bytes(forge(objs))
    code, out, _ = audit(capsys, str(journal), "--verify-key", str(verify))
    assert code == 1 and "expected nothing after the seal line" in out


# -- property 4: substitution ------------------------------------------------------------------


def test_run_prints_its_id_and_head_and_audit_checks_them(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    seal, verify = keys
    mine, other = tmp_path / "mine.jsonl", tmp_path / "other.jsonl"
    argv = ["run", "--quiet", "--seal", str(seal), "tests.services:SelfStopping", "--journal"]
    assert main([*argv, str(mine)]) == 0
    err = capsys.readouterr().err
    found = re.search(r"run id ([0-9a-f]{32}), chain head ([0-9a-f]{64})", err)
    assert found is not None, err
    run_id, head = found[1], found[2]
    header = objects_of(mine)[0]
    assert header["run"]["id"] == run_id and header["run"]["pid"] == os.getpid()
    assert {"host", "start", "lifecycle"} <= header["run"].keys()
    assert objects_of(mine)[-1]["hash"] == head
    expected = ["--verify-key", str(verify), "--run-id", run_id, "--expect-head", head]
    assert audit(capsys, str(mine), *expected)[0] == 0
    # Another run of the same service, sealed with the same key, is a valid journal...
    assert main([*argv, str(other)]) == 0
    capsys.readouterr()
    assert audit(capsys, str(other), "--verify-key", str(verify))[0] == 0
    # ...but not the run expected.
    code, out, _ = audit(capsys, str(other), *expected)
    assert code == 1
    assert "line 1: run: <header>: expected run id" in out
    assert "end: run: <journal>: expected the chain head" in out


def test_expect_head_must_be_a_sha256(
    sealed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = audit(capsys, str(sealed[0]), "--expect-head", "xyz")
    assert code == 2 and "64 digits" in err


# -- property 5: unsealed journals -------------------------------------------------------------


def test_an_unsealed_journal_audits_and_says_plainly_what_that_proves(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "plain.jsonl"
    run_id, head = demo(capsys, journal, None)
    code, out, err = audit(capsys, str(journal), "--run-id", run_id, "--expect-head", head)
    assert code == 0 and out.startswith("outcome:"), out  # no violation listed
    assert "unsealed: detects accidental edits, not a forger" in err
    code, doc = audit_json(capsys, str(journal))
    assert code == 0 and doc["sealed"] is False and doc["integrity"] == UNSEALED
    code, out, _ = audit(capsys, str(journal), "--verify-key", str(keys[1]))
    assert code == 1 and "expected a sealed journal" in out


def test_a_version_1_journal_is_still_read_and_audited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "v1.jsonl"
    demo(capsys, journal, None)
    objs = objects_of(journal)
    objs[0]["version"] = 1
    del objs[0]["run"]
    journal.write_bytes(forge(objs))
    header, records = read_journal(journal)
    assert header["version"] == 1 and records
    code, out, _ = audit(capsys, str(journal))
    assert code == 0 and out.startswith("outcome:"), out  # no violation listed


# -- the key chain -----------------------------------------------------------------------------


def test_epoch_keys_derive_forward_only(keys: tuple[Path, Path]) -> None:
    verify = load_verify_key(keys[1])
    chain = EpochKeys(verify, 2)
    two = chain.key(2)
    assert two == next_key(next_key(verify.first))
    assert chain.key(5) == next_key(next_key(next_key(two)))
    with pytest.raises(ValueError, match="no key for epoch 4"):
        chain.key(4)
    assert verify.first.hex() not in repr(verify)


def test_a_sealer_refuses_a_bad_epoch_length_and_a_damaged_key_file(
    keys: tuple[Path, Path],
) -> None:
    seal, _ = keys
    with pytest.raises(ValueError, match="positive number of lines"):
        Sealer(seal, 0)
    doc = json.loads(seal.read_text())
    seal.write_text(json.dumps({**doc, "key": "zz"}))
    with pytest.raises(SealKeyError, match="no valid key"):
        Sealer(seal)
    seal.write_text(json.dumps({**doc, "epoch": -1}))
    with pytest.raises(SealKeyError, match="bad epoch"):
        Sealer(seal)


# -- the library and Service.main ------------------------------------------------------------


def test_service_main_takes_seal_and_seal_epoch(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.services import SelfStopping

    journal = tmp_path / "main.jsonl"
    argv = ["--quiet", "--journal", str(journal), "--seal", str(keys[0]), "--seal-epoch", "3"]
    assert SelfStopping.main(argv) == 0
    assert "sealed, run id" in capsys.readouterr().err
    assert objects_of(journal)[0]["seal"]["every"] == 3
    assert audit(capsys, str(journal), "--verify-key", str(keys[1]))[0] == 0


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_bad_seal_epoch_is_a_usage_error(
    tmp_path: Path, keys: tuple[Path, Path], value: str
) -> None:
    argv = ["demo", "--journal", str(tmp_path / "j"), "--seal", str(keys[0])]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--seal-epoch", value])
    assert exited.value.code == 2


def test_a_journal_sealed_without_a_file_is_refused(keys: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match="needs a file"):
        Journal(seal=keys[0])


def test_a_task_table_changed_after_the_first_epoch_keeps_the_header_and_the_seal(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "j.jsonl"
    with Journal(journal, seal=keys[0], seal_epoch=2) as writer:
        writer.describe_tasks({"A": {"deps": []}})
        writer.record("task", "A", "create", "registered", "created", True)  # header rewritten
        writer.record("task", "A", "init", "created", "initialized", True)
        writer.record("task", "A", "start", "initialized", "running", True)
        writer.describe_tasks({"B": {"deps": []}})  # too late: the first key is gone
        writer.record("task", "A", "stop", "running", "stopping", True)
        writer.record("task", "A", "finish", "stopping", "stopped", True)
    assert set(objects_of(journal)[0]["tasks"]) == {"A"}
    code, out, _ = audit(capsys, str(journal), "--verify-key", str(keys[1]), "--partial")
    assert code == 0 and out.startswith("outcome:"), out  # no violation listed


def test_a_sealed_journal_draws_and_a_reordered_one_draws_as_if_sorted(
    sealed: tuple[Path, Path],
) -> None:
    from lifecycle import diagrams
    from lifecycle.spec import TASK

    journal = sealed[0]
    header, records = read_journal(journal)
    expected = diagrams.journal_machine_diagram(TASK, (header, records))
    assert diagrams.journal_machine_diagram(TASK, journal) == expected
    deps = diagrams.journal_dependency_diagram(journal)
    assert deps == diagrams.journal_dependency_diagram((header, records))
    # Two task records swapped (and the chain recomputed): the file is streamed, finds them
    # out of order, and is read again sorted.
    objs = objects_of(journal)
    subject = next(objs[i]["subject"] for i in record_lines(objs) if objs[i]["kind"] == "task")
    first, second = [i for i in record_lines(objs) if objs[i]["subject"] == subject][:2]
    objs[first], objs[second] = objs[second], objs[first]
    journal.write_bytes(forge(objs))
    assert diagrams.journal_machine_diagram(TASK, journal) == expected


def test_an_evolved_or_closed_key_is_overwritten_in_memory(keys: tuple[Path, Path]) -> None:
    sealer = Sealer(keys[0], every=2)
    first = sealer._key  # the bytearray that holds K[e] while it is in use
    assert any(first)
    for index in range(3):  # the third line is signed in the next epoch
        sealer.sign(f"{index:064x}")
    assert first == bytearray(len(first)) and sealer.epoch == sealer.start + 1
    current = sealer._key
    sealer.close()
    assert current == bytearray(len(current))
    with pytest.raises(RuntimeError, match="closed"):
        sealer.sign("0" * 64)


def test_a_key_file_that_cannot_be_rewritten_stops_the_streaming_as_a_write_error(
    tmp_path: Path, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import lifecycle.seal

    journal = Journal(tmp_path / "j.jsonl", seal=keys[0], seal_epoch=2)

    def refuse(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lifecycle.seal.os, "replace", refuse)
    for index in range(3):
        journal.record("task", f"T{index}", "create", "registered", "created", True)
    journal.close()
    error = journal.stream_error
    assert error is not None and "cannot be rewritten: No space left on device" in str(error)
    assert len(journal.records) == 3  # the records are kept in memory


def test_no_log_line_holds_key_material(
    tmp_path: Path,
    keys: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lifecycle.seal

    seal, verify = keys
    secrets = {json.loads(verify.read_text())["key"], json.loads(seal.read_text())["key"]}
    caplog.set_level("DEBUG")
    journal = Journal(tmp_path / "j.jsonl", seal=seal, seal_epoch=2)
    secrets.add(json.loads(seal.read_text())["key"])
    for index in range(3):
        journal.record("task", f"T{index}", "create", "registered", "created", True)
    journal.describe_tasks({"Late": {"deps": []}})  # logs: the header can no longer change

    def refuse(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lifecycle.seal.os, "replace", refuse)
    for index in range(3):  # logs: streaming stopped, the key file cannot be rewritten
        journal.record("task", f"U{index}", "create", "registered", "created", True)
    journal.close()
    assert {record.levelname for record in caplog.records} >= {"WARNING", "ERROR"}
    for secret in secrets:
        assert secret not in caplog.text


def test_the_seal_line_is_no_skipped_record_for_the_outcome(
    sealed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    journal, _ = sealed
    result = outcome(journal)
    assert result.skipped == 0
    capsys.readouterr()
    assert main(["summary", str(journal)]) == 0
    assert "skipped" not in capsys.readouterr().err
