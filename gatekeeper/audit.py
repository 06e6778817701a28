"""The tamper-evident audit log: one JSON line per decision, hash-chained, fsync'd before returning.

Records use the field names of OPA's decision-log events where they apply (``decision_id``,
``timestamp``, ``path``, ``input``, ``result``, ``labels``, ``metrics``, ``bundles``) plus gatekeeper's
own (``session_id``, ``decision``, ``violations``, ``mode``, ``error``, ``seq``, ``prev_hash``, ``hash``).

Each record's ``hash`` is the SHA-256 of its canonical JSON (sorted keys, no spaces, ASCII) without the
``hash`` field; ``prev_hash`` is the previous record's ``hash`` and ``seq`` counts from 1, so an
altered, removed or reordered record breaks the chain at a line :func:`verify_log` can name.

Records are rendered by a structlog processor chain and written with one ``write`` each. Durability
uses group commit: every ``append`` returns only after an ``fsync`` that covers its record, but
concurrent appenders share one ``fsync``. An exclusive ``flock`` around each write lets several
processes (CLI invocations, a server) append to the same file safely.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from gatekeeper.errors import AuditError
from gatekeeper.jsonout import PolicyInput, canonical_json, canonical_json_with

GENESIS_HASH = "sha256:" + "0" * 64
_TAIL_STEP = 1 << 13  # a record is about 1-3 KB; longer ones are found by reading further back


def _canonical_record(fields: Mapping[str, Any]) -> str:
    """canonical_json(fields), with a policy input's canonical text (made once, for the engine or
    from cached facts) spliced in."""
    document = fields.get("input")
    if isinstance(document, PolicyInput):
        try:
            return canonical_json_with(fields, "input", document.canonical())
        except (TypeError, ValueError):
            pass  # a value JSON cannot hold: written as its str, as in any other record
    return canonical_json(fields)


def record_hash(record: Mapping[str, Any]) -> str:
    body = {key: value for key, value in record.items() if key != "hash"}
    return _hash_of(canonical_json(body))


def _hash_of(canonical: str) -> str:
    """The ``hash`` of a record whose canonical JSON (without ``hash``) is ``canonical``."""
    return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()


_HASH_MEMBER = b',"hash":"'
_SEQ_VALUE = re.compile(rb'"seq":([0-9]+)[,}]')


def _chain_link(line: bytes) -> tuple[int, str] | None:
    """The ``seq`` and ``hash`` of the record on ``line``, read without parsing it: with several
    writers nearly every record continues from the other's last line, and ``json.loads`` of it was
    2% of a decision's CPU. Only a line as :meth:`AuditLog._chain_and_render` writes it qualifies:
    ``hash`` last and equal to the hash of the rest, and one ``"seq":`` (so it is the record's own).
    None for any other line, which the caller then parses whole."""
    start = line.rfind(_HASH_MEMBER)
    if start < 0 or not line.endswith(b'"}') or line.count(b'"seq":') != 1:
        return None
    digest = line[start + len(_HASH_MEMBER) : -2].decode("ascii", "replace")
    if digest != "sha256:" + hashlib.sha256(line[:start] + b"}").hexdigest():
        return None
    seq = _SEQ_VALUE.search(line)
    return None if seq is None else (int(seq.group(1)), digest)


# The date and time of the last second a timestamp was made in: every record has a timestamp, and
# formatting them through datetime took three times as long.
_last_second: tuple[int, str] = (-1, "")


def utc_timestamp() -> str:
    """RFC 3339 UTC with microseconds, as OPA writes ``timestamp``: 2026-12-06T21:35:00.123456Z."""
    global _last_second  # noqa: PLW0603 - a one-entry cache; replaced whole, so threads may share it
    second, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    last = _last_second
    if last[0] != second:
        last = _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{last[1]}.{nanoseconds // 1000:06d}Z"


class _LineWriter:
    """The structlog 'logger' at the end of the chain: writes one rendered line to the audit fd."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.last_line_bytes = 0

    def msg(self, message: str) -> None:
        data = (message + "\n").encode("ascii")
        written = 0
        while written < len(data):
            written += os.write(self.fd, data[written:])
        self.last_line_bytes = len(data)

    info = msg


class AuditLog:
    """Append-only, hash-chained JSON-lines log at ``path``."""

    def __init__(self, path: str | os.PathLike[str], *, labels: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.labels = dict(labels or {})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as error:
            raise AuditError(f"cannot open audit log {self.path}: {error}") from error
        self._write_lock = threading.Lock()
        self._sync_cond = threading.Condition()
        self._syncing = False
        self._written_seq = 0
        self._synced_seq = 0
        self._prev_hash = GENESIS_HASH
        self._seq = 0
        self._last_written_seq = 0
        self._known_size = -1
        self._last_record: dict[str, Any] = {}
        self._writer = _LineWriter(self._fd)
        self._logger = structlog.wrap_logger(
            self._writer,
            processors=[structlog.processors.EventRenamer("msg"), self._chain_and_render],
        )

    # -- writing -----------------------------------------------------------------------------------

    def append(
        self, fields: dict[str, Any], *, event: str = "decision_made", durable: bool = True
    ) -> dict[str, Any]:
        """Write one record and return it once it is durable (fsync'd).

        ``durable=False`` returns as soon as it is written; the caller must then see
        :meth:`sync_through` return for its ``seq`` before acting on the record.
        """
        with self._write_lock:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except OSError as error:
                raise AuditError(f"cannot lock audit log {self.path}: {error}") from error
            written = False
            try:
                self._catch_up_with_file()
                self._logger.info(event, **fields)
                written = True
                self._known_size += self._writer.last_line_bytes
                seq, record = self._seq, self._last_record
                self._last_written_seq = seq
            except OSError as error:
                raise AuditError(f"cannot write audit log {self.path}: {error}") from error
            finally:
                if not written:
                    self._known_size = -1  # re-read the chain from the file before the next record
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        if durable:
            self.sync_through(seq)
        return record

    def _chain_and_render(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
        """structlog processor: number the record, link it to its predecessor, render its line.

        Runs under the write lock. The record is serialised once: the canonical JSON that is hashed,
        with ``hash`` appended as its last member (verifying parses the line, so member order in the
        file does not matter; the hash is always of the canonical form).
        """
        self._seq += 1
        event_dict["seq"] = self._seq
        event_dict["prev_hash"] = self._prev_hash
        event_dict.pop("hash", None)
        body = _canonical_record(event_dict)
        digest = _hash_of(body)
        self._prev_hash = digest
        self._last_record = {**event_dict, "hash": digest}
        return f'{body[:-1]},"hash":"{digest}"}}'

    @property
    def last_written_seq(self) -> int:
        """The ``seq`` of the last record this log has completely written (0 before any).

        An fsync started after reading it covers that record and every earlier one of this log.
        """
        return self._last_written_seq

    def sync_through(self, seq: int) -> None:
        """Return once an fsync covering record ``seq`` has completed (group commit)."""
        with self._sync_cond:
            self._written_seq = max(self._written_seq, seq)
            while self._synced_seq < seq:
                if self._syncing:
                    self._sync_cond.wait()
                    continue
                self._syncing = True
                target = self._written_seq
                self._sync_cond.release()
                try:
                    os.fsync(self._fd)
                    error: OSError | None = None
                except OSError as raised:
                    error = raised
                finally:
                    self._sync_cond.acquire()
                    self._syncing = False
                    self._sync_cond.notify_all()
                if error is not None:
                    raise AuditError(f"cannot fsync audit log {self.path}: {error}")
                self._synced_seq = max(self._synced_seq, target)

    def _catch_up_with_file(self) -> None:
        """Continue the chain from the file's last record if anyone (another process) wrote since.

        With several writers (``gatekeeper serve --workers``) this runs for nearly every record, so
        it reads only the file's last few kilobytes, on the descriptor it already holds.
        """
        size = os.fstat(self._fd).st_size
        if size == self._known_size:
            return
        line = self._last_line(size)
        if line is None:
            self._seq, self._prev_hash = 0, GENESIS_HASH
        elif (link := _chain_link(line)) is not None:
            self._seq, self._prev_hash = link
        else:
            try:
                last = json.loads(line)
            except ValueError as error:
                raise AuditError(f"last record of {self.path} is not valid JSON: {error}") from error
            if not isinstance(last, dict):
                raise AuditError(f"last record of {self.path} is not a JSON object")
            self._seq, self._prev_hash = int(last.get("seq", 0)), str(last.get("hash", GENESIS_HASH))
        self._known_size = os.fstat(self._fd).st_size

    def _last_line(self, size: int) -> bytes | None:
        """The last complete line (without its newline), or None for an empty file.

        A last line without its newline (a crash mid-write) is moved aside first.
        """
        while size > 0:
            start, tail = self._last_piece(size)
            if tail.endswith(b"\n"):
                return tail[:-1]
            self._move_partial_aside(start, tail)
            size = start
        return None

    def _last_piece(self, end: int) -> tuple[int, bytes]:
        """Where the file's last line before ``end`` starts, and its bytes up to ``end`` (with its
        newline, if it has one), read backwards from ``end`` in growing steps."""
        step = _TAIL_STEP
        while True:
            start = max(0, end - step)
            chunk = os.pread(self._fd, end - start, start)
            cut = chunk.rfind(b"\n", 0, len(chunk) - 1)
            if cut != -1:
                return start + cut + 1, chunk[cut + 1 :]
            if start == 0:
                return 0, chunk
            step *= 4

    def _move_partial_aside(self, start: int, partial: bytes) -> None:
        """Move a half-written last line (a crash mid-write) aside so the chain continues cleanly.

        A record is acknowledged only after its line is complete and fsync'd, so a partial line was
        never returned to anyone; its bytes are kept in ``<log>.partial-<time>`` rather than lost.
        """
        aside = self.path.with_name(f"{self.path.name}.partial-{time.time_ns()}")
        aside.write_bytes(partial)
        os.truncate(self.path, start)
        structlog.get_logger("gatekeeper.audit").warning(
            "audit_tail_repaired", path=str(self.path), moved_bytes=len(partial), moved_to=str(aside)
        )

    def close(self) -> None:
        with self._write_lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    records: int
    path: str
    line: int | None = None
    problem: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"{self.path}: {self.records} records, hash chain intact"
        return f"{self.path}: line {self.line}: {self.problem} ({self.records} records verified before it)"


def verify_log(path: str | os.PathLike[str]) -> VerifyReport:
    """Check every record's hash, sequence number and link to its predecessor; name the first failure."""
    name = str(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; iterating lines of a big file
    except OSError as error:
        return VerifyReport(False, 0, name, None, f"cannot open: {error}")
    prev_hash, expected_seq, count = GENESIS_HASH, 1, 0
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                return VerifyReport(False, count, name, number, "incomplete last record (no newline)")
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                return VerifyReport(False, count, name, number, f"not valid JSON: {error}")
            if not isinstance(record, dict):
                return VerifyReport(False, count, name, number, "record is not a JSON object")
            seq = record.get("seq")
            if seq != expected_seq:
                problem = (
                    f"record missing: expected seq {expected_seq}, found {seq}"
                    if isinstance(seq, int) and seq > expected_seq
                    else f"sequence out of order: expected seq {expected_seq}, found {seq}"
                )
                return VerifyReport(False, count, name, number, problem)
            if record.get("prev_hash") != prev_hash:
                return VerifyReport(False, count, name, number, "chain broken: prev_hash does not match")
            if record.get("hash") != record_hash(record):
                return VerifyReport(False, count, name, number, "record altered: hash does not match")
            prev_hash, expected_seq, count = record["hash"], expected_seq + 1, count + 1
    return VerifyReport(True, count, name)


def default_audit_path() -> Path:
    """``$GATEKEEPER_AUDIT_LOG``, else ``$XDG_STATE_HOME/gatekeeper/audit.jsonl``."""
    explicit = os.environ.get("GATEKEEPER_AUDIT_LOG")
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "gatekeeper" / "audit.jsonl"
