"""Forward-secure sealing of journals: keys, epochs and MACs.

The model is systemd's Forward Secure Sealing and Schneier and Kelsey's secure audit logs. A
writer holds a *sealing key state* (``SEAL_FILE``: an epoch number ``e`` and the key ``K[e]``);
the auditor holds the *verification key* (``VERIFY_FILE``: ``K[0]``). Keys evolve one way::

    K[e + 1] = SHA-256(b"lifecycle-seal/evolve\\x00" + K[e])

so ``K[e]`` gives every later key and no earlier one. Every line of a sealed journal carries
``mac = HMAC-SHA256(K[epoch], previous line's mac + this line's hash)`` (hex; the header's
previous mac is the empty string): chained like the hash chain, so a line cannot be changed,
dropped, inserted or moved without its key. Line ``j`` of a run (the header is line 0) is in
epoch ``start + j // every``, where the header names ``start`` and ``every``.

Forward security: the file on disk always holds the key of the epoch *after* the one in use
(written before the key in use signs anything), and the key of a finished epoch is overwritten
in memory. Someone who copies ``SEAL_FILE`` at any moment can therefore compute no key that
signed a line already written, and cannot alter or insert such a line undetected. A later run
continues from the epoch on disk, so no key signs two runs.

What this cannot show: with ``K[e]`` one can write a whole new journal whose lines all claim
epochs ``e`` and later. Its run id and chain head differ from the real run's, which
``lifecycle run`` prints on exit: ``lifecycle audit --run-id ID --expect-head HEX`` checks both.

The verification key can forge every line (it is ``K[0]``): keep it away from the machine that
writes the journal. Key files are JSON, mode 0600; a key file that the group or others may read
is refused (`SealKeyError`). Key material never enters a journal, a message or a log line: the
journal names a key by its id, a hash of ``K[0]`` that does not reveal it.

Standard library only (`hmac`, `hashlib`, `secrets`, `os`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile

import attrs

from lifecycle.errors import LifecycleError

__all__ = [
    "DEFAULT_EPOCH_LENGTH",
    "KDF",
    "MAX_EPOCH",
    "MAX_KEY_FILE_BYTES",
    "EpochKeys",
    "SealKeyError",
    "Sealer",
    "VerifyKey",
    "keygen",
    "line_mac",
    "load_verify_key",
    "next_key",
]

#: Lines signed with one key before it evolves (``--seal-epoch``).
DEFAULT_EPOCH_LENGTH = 256
#: The name of the key derivation, as the journal header records it.
KDF = "sha256-label-v1"
#: The highest epoch a verifier derives a key for (each step is one SHA-256): a bound on the
#: work a hostile header can ask for. A writer refuses to go past it.
MAX_EPOCH = 2**22
#: The largest key file read (one is about 200 bytes): a larger file is refused, never read in
#: part, so that nothing after a valid key can hide in it.
MAX_KEY_FILE_BYTES = 4096

_KEY_BYTES = 32
_EVOLVE = b"lifecycle-seal/evolve\x00"
_ID = b"lifecycle-seal/id\x00"
_SEAL_FORMAT = "lifecycle-seal-key"
_VERIFY_FORMAT = "lifecycle-verify-key"
_KEY_VERSION = 1


class SealKeyError(LifecycleError, ValueError):
    """A key file cannot be used: missing, unreadable, readable by group or others, too big,
    malformed, already present (for `keygen`), or past `MAX_EPOCH`. ``path`` names the file;
    the message says what is wrong and never holds key material."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"key file {path!r}: {problem}")


def next_key(key: bytes | bytearray) -> bytes:
    """``K[e + 1]`` from ``K[e]``: the one-way step of the key derivation. Pure."""
    return hashlib.sha256(_EVOLVE + bytes(key)).digest()


def key_id(first: bytes | bytearray) -> str:
    """The public id of the key chain that starts at ``first`` (``K[0]``): 32 hex digits."""
    return hashlib.sha256(_ID + bytes(first)).hexdigest()[:32]


def line_mac(key: bytes | bytearray, previous: str, line_hash: str) -> str:
    """The MAC of a line: HMAC-SHA256 under its epoch's key of the previous line's MAC and the
    line's hash, hex. Pure."""
    return hmac.digest(key, (previous + line_hash).encode("ascii"), "sha256").hex()


def _erase(key: bytearray) -> None:
    """Overwrite a key in place: as far as Python lets a program forget a secret."""
    key[:] = bytes(len(key))


# -- key files ---------------------------------------------------------------------------------


def keygen(seal_path: str | os.PathLike[str], verify_path: str | os.PathLike[str]) -> str:
    """Create a new key chain: ``seal_path`` (epoch 0 and ``K[0]``, for the writer) and
    ``verify_path`` (``K[0]``, for the auditor), both mode 0600. Returns the key id.

    Raises `SealKeyError` if either file exists (nothing is overwritten) or cannot be written;
    a half-made pair is removed.
    """
    seal, verify = os.fspath(seal_path), os.fspath(verify_path)
    if os.path.abspath(seal) == os.path.abspath(verify):
        raise SealKeyError(seal, "the sealing key and the verification key need two files")
    first = bytearray(secrets.token_bytes(_KEY_BYTES))
    try:
        ident = key_id(first)
        made: list[str] = []
        try:
            for path, doc in (
                (verify, {"format": _VERIFY_FORMAT, "version": _KEY_VERSION, "id": ident}),
                (seal, {"format": _SEAL_FORMAT, "version": _KEY_VERSION, "id": ident, "epoch": 0}),
            ):
                _create_exclusive(path, _key_doc(doc, first))
                made.append(path)
        except BaseException:
            for path in made:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise
        return ident
    finally:
        _erase(first)


def _key_doc(doc: dict[str, object], key: bytearray) -> bytes:
    return (json.dumps({**doc, "key": key.hex()}, sort_keys=True) + "\n").encode("ascii")


def _create_exclusive(path: str, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SealKeyError(path, "already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise SealKeyError(path, f"cannot be created: {exc.strerror or exc}") from exc
    try:
        with open(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise SealKeyError(path, f"cannot be written: {exc.strerror or exc}") from exc


def _read_key_file(path: str, expected: str) -> tuple[dict[str, object], bytearray]:
    """A key file's fields and its key; refuses a file the group or others may read, and one
    over `MAX_KEY_FILE_BYTES`."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise SealKeyError(path, f"cannot be read: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SealKeyError(path, "is not a regular file")
        if info.st_mode & 0o077:
            raise SealKeyError(
                path,
                f"is readable or writable by group or others (mode {stat.S_IMODE(info.st_mode):o});"
                " a key must be private: chmod 600 it",
            )
        data = os.read(fd, MAX_KEY_FILE_BYTES + 1)  # one byte more tells a file too big
    except OSError as exc:
        raise SealKeyError(path, f"cannot be read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise SealKeyError(path, f"is too big for a key file (over {MAX_KEY_FILE_BYTES} bytes)")
    try:
        doc = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise SealKeyError(path, "is not a lifecycle key file (not JSON)") from None
    if not isinstance(doc, dict) or doc.get("format") != expected:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise SealKeyError(path, f"is not a {expected} file (format {found!r})")
    if doc.get("version") != _KEY_VERSION or type(doc.get("version")) is not int:
        raise SealKeyError(path, f"has unsupported version {doc.get('version')!r}")
    text = doc.pop("key", None)
    try:
        if not isinstance(text, str) or len(text) != 2 * _KEY_BYTES:
            raise ValueError
        key = bytearray.fromhex(text)
    except ValueError:
        raise SealKeyError(path, f"has no valid key (expected {_KEY_BYTES} bytes in hex)") from None
    if not isinstance(doc.get("id"), str):
        raise SealKeyError(path, "has no key id")
    return doc, key


@attrs.frozen(repr=False)
class VerifyKey:
    """An auditor's verification key: ``K[0]`` of a chain and its public ``id``."""

    id: str
    first: bytes

    def __repr__(self) -> str:  # never show the key
        return f"VerifyKey(id={self.id!r})"


def load_verify_key(path: str | os.PathLike[str]) -> VerifyKey:
    """Read a verification key file. Raises `SealKeyError` (see its docstring)."""
    shown = os.fspath(path)
    doc, key = _read_key_file(shown, _VERIFY_FORMAT)
    try:
        if key_id(key) != doc["id"]:
            raise SealKeyError(shown, "its key does not match its id (the file was edited)")
        return VerifyKey(str(doc["id"]), bytes(key))
    finally:
        _erase(key)


class EpochKeys:
    """The keys a verifier needs, epoch by epoch, from ``K[0]``: `key` for each epoch asked,
    in non-decreasing order (an earlier epoch raises `ValueError`: its key is gone)."""

    def __init__(self, verify: VerifyKey, start: int) -> None:
        if not 0 <= start <= MAX_EPOCH:
            raise ValueError(f"epoch {start} is out of range (0 to {MAX_EPOCH})")
        key = verify.first
        for _ in range(start):
            key = next_key(key)
        self.epoch = start
        self._key = key

    def key(self, epoch: int) -> bytes:
        if epoch < self.epoch or epoch > MAX_EPOCH:
            raise ValueError(f"no key for epoch {epoch} after epoch {self.epoch}")
        while self.epoch < epoch:
            self._key = next_key(self._key)
            self.epoch += 1
        return self._key


class Sealer:
    """The writer's side: signs a journal's lines, evolving the key every ``every`` lines.

    Opening reads ``SEAL_FILE`` (epoch ``e``, ``K[e]``), keeps ``K[e]`` in memory to sign this
    run's first ``every`` lines, and at once rewrites the file with epoch ``e + 1`` (see the
    module docstring). Each evolution overwrites the old key in memory and writes the next
    epoch's key to the file: a temporary file beside it (mode 0600), flushed and synced, then
    `os.replace`. Raises `SealKeyError` if the file cannot be read or rewritten.

    Not thread-safe: the journal calls it with its lock held.
    """

    def __init__(self, path: str | os.PathLike[str], every: int = DEFAULT_EPOCH_LENGTH) -> None:
        if type(every) is not int or every < 1:
            raise ValueError(f"the seal epoch must be a positive number of lines, not {every!r}")
        self.path = os.fspath(path)
        self.every = every
        doc, self._key = _read_key_file(self.path, _SEAL_FORMAT)
        epoch = doc.get("epoch")
        if type(epoch) is not int or not 0 <= epoch < MAX_EPOCH:
            _erase(self._key)
            raise SealKeyError(self.path, f"has a bad epoch {epoch!r} (0 to {MAX_EPOCH - 1})")
        self.key_id = str(doc["id"])
        self.start = epoch
        self.epoch = epoch
        self._signed = 0  # lines signed in this epoch
        self._lines = 0  # lines signed in this run
        self._closed = False
        self.mac = ""  # the last line's MAC
        try:
            self._persist()
        except BaseException:
            _erase(self._key)
            raise

    @property
    def in_first_epoch(self) -> bool:
        """Whether every line so far was signed with the run's first key (still held)."""
        return self.epoch == self.start

    def restart(self) -> None:
        """Sign again from the header (the journal rewrites its file); first epoch only."""
        if not self.in_first_epoch:
            raise RuntimeError("the first epoch's key is gone: the journal cannot be re-signed")
        self._signed = 0
        self._lines = 0
        self.mac = ""

    def sign(self, line_hash: str) -> str:
        """The MAC of the next line, whose hash is ``line_hash``; evolves the key after
        ``every`` lines. Raises `SealKeyError` if the key file cannot be rewritten, and
        `RuntimeError` once closed (its key is gone)."""
        if self._closed:
            raise RuntimeError("the sealer is closed: its key was erased")
        if self._signed == self.every:
            self._evolve()
        self.mac = line_mac(self._key, self.mac, line_hash)
        self._signed += 1
        self._lines += 1
        return self.mac

    def close(self) -> None:
        """Forget the key in use. Idempotent; signing afterwards raises `RuntimeError`."""
        _erase(self._key)
        self._closed = True

    def _evolve(self) -> None:
        new = bytearray(next_key(self._key))
        _erase(self._key)
        self._key = new
        self.epoch += 1
        self._signed = 0
        self._persist()

    def _persist(self) -> None:
        """Write the next epoch's key state to the file, atomically."""
        if self.epoch + 1 > MAX_EPOCH:
            raise SealKeyError(self.path, f"the key chain is used up (epoch {MAX_EPOCH})")
        ahead = bytearray(next_key(self._key))
        doc = {"format": _SEAL_FORMAT, "version": _KEY_VERSION, "id": self.key_id}
        data = _key_doc({**doc, "epoch": self.epoch + 1}, ahead)
        _erase(ahead)
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            fd, temp = tempfile.mkstemp(prefix=".seal.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise SealKeyError(self.path, f"cannot be rewritten: {exc.strerror or exc}") from exc
        try:
            with open(fd, "wb") as out:
                os.fchmod(out.fileno(), 0o600)
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise SealKeyError(self.path, f"cannot be rewritten: {exc.strerror or exc}") from exc
