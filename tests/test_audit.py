"""The audit log: chain, durability under concurrency, several writers, crash tail, verify."""

from __future__ import annotations

import json
import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gatekeeper import audit as audit_module
from gatekeeper.audit import GENESIS_HASH, AuditLog, _chain_link, record_hash, utc_timestamp, verify_log
from gatekeeper.jsonout import CanonicalObject, PolicyInput, policy_input_json


def _append_many(path: str, count: int) -> None:
    log = AuditLog(path)
    for number in range(count):
        log.append({"decision": "allow", "n": number})
    log.close()


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_first_record_links_to_genesis_and_hash_covers_the_record(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    record = log.append({"decision": "deny", "decision_id": "d1"})
    log.close()
    [written] = _records(path)
    assert written == record
    assert written["seq"] == 1
    assert written["prev_hash"] == GENESIS_HASH
    assert written["hash"] == record_hash(written)
    assert written["msg"] == "decision_made"


def test_concurrent_appends_form_one_unbroken_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    threads = [threading.Thread(target=lambda: [log.append({"n": i}) for i in range(200)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    report = verify_log(path)
    assert report.ok, report.describe()
    assert report.records == 1600


def test_several_processes_append_to_one_log(tmp_path):
    path = tmp_path / "audit.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(path), 100)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    report = verify_log(path)
    assert report.ok, report.describe()
    assert report.records == 300


def test_a_writer_continues_after_records_longer_than_its_tail_read(tmp_path):
    # Catching up reads the file backwards from its end a few kilobytes at a time; a record far
    # longer than one read (a long command, a long history) must still be found whole.
    path = tmp_path / "audit.jsonl"
    first, second = AuditLog(path), AuditLog(path)
    first.append({"n": 1})
    long_record = first.append({"n": 2, "command": "x" * 100_000})
    continued = second.append({"n": 3})
    first.append({"n": 4})
    first.close()
    second.close()
    assert continued["prev_hash"] == long_record["hash"]
    assert [r["seq"] for r in _records(path)] == [1, 2, 3, 4]
    assert verify_log(path).ok


def test_chain_link_reads_seq_and_hash_from_the_line_as_written(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append({"n": 1})
    record = log.append({"n": 2, "violations": [{"rule": "x", "message": 'a "seq":7, here'}]})
    log.close()
    line = path.read_bytes().splitlines()[-1]
    assert _chain_link(line) == (2, record["hash"])


def test_chain_link_refuses_lines_it_cannot_read_safely(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append({"n": 1, "input": {"seq": 99}})  # a second "seq" key: whose would it be?
    log.append({"n": 2})
    log.close()
    nested, plain = path.read_bytes().splitlines()
    assert _chain_link(nested) is None
    altered = plain.replace(b'"n":2', b'"n":3')  # the hash no longer covers the rest
    assert _chain_link(altered) is None
    record = json.loads(plain)
    reordered = json.dumps({"hash": record.pop("hash"), **record}, separators=(",", ":")).encode()
    assert _chain_link(reordered) is None
    assert _chain_link(b'{"seq":1}') is None
    assert _chain_link(b"") is None


def test_a_writer_continues_after_a_record_it_must_parse_whole(tmp_path):
    path = tmp_path / "audit.jsonl"
    first, second = AuditLog(path), AuditLog(path)
    nested = first.append({"n": 1, "input": {"seq": 99}})
    continued = second.append({"n": 2})
    first.append({"n": 3})
    first.close()
    second.close()
    assert (continued["seq"], continued["prev_hash"]) == (2, nested["hash"])
    assert [r["seq"] for r in _records(path)] == [1, 2, 3]
    assert verify_log(path).ok


def test_an_input_encoded_for_the_engine_is_written_as_if_encoded_again(tmp_path):
    def document() -> dict:
        return {
            "call": {"id": "c1", "arguments": {"command": "ls \u00e9 \ud800"}},
            "facts": {"z": 1, "a": [0.1]},
        }

    encoded = PolicyInput(document())
    policy_input_json(encoded)  # as an engine does before the record is written
    assert encoded.canonical_text is not None
    lines = []
    for name, value in (("spliced", encoded), ("plain", document())):
        path = tmp_path / f"{name}.jsonl"
        log = AuditLog(path)
        record = log.append({"decision": "allow", "input": value, "error": "x"})
        log.close()
        assert record["input"] is value
        assert verify_log(path).ok
        lines.append(path.read_bytes())
    assert lines[0] == lines[1]


def test_an_input_with_cached_facts_is_written_as_if_encoded_again(tmp_path):
    def document() -> dict:
        return {"call": {"id": "c2", "arguments": {"command": "ls"}}, "facts": {"z": [1], "a": None}}

    cached = PolicyInput(document(), facts=CanonicalObject(document()["facts"]))
    lines = []
    for name, value in (("cached", cached), ("plain", document())):
        path = tmp_path / f"{name}.jsonl"
        log = AuditLog(path)
        log.append({"decision": "allow", "input": value})
        log.close()
        assert verify_log(path).ok
        lines.append(path.read_bytes())
    assert lines[0] == lines[1]


def test_an_input_changed_after_encoding_is_encoded_again(tmp_path):
    encoded = PolicyInput({"call": {"id": "c1"}})
    policy_input_json(encoded)
    encoded["facts"] = {"commands": []}
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append({"input": encoded})
    log.close()
    assert _records(path)[0]["input"] == {"call": {"id": "c1"}, "facts": {"commands": []}}
    assert verify_log(path).ok


def test_reopened_log_continues_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    _append_many(str(path), 3)
    _append_many(str(path), 2)
    assert [r["seq"] for r in _records(path)] == [1, 2, 3, 4, 5]
    assert verify_log(path).ok


def test_altered_record_is_reported_at_its_line(tmp_path):
    path = tmp_path / "audit.jsonl"
    _append_many(str(path), 5)
    lines = path.read_text().splitlines()
    tampered = json.loads(lines[2])
    tampered["decision"] = "deny"
    lines[2] = json.dumps(tampered, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    report = verify_log(path)
    assert not report.ok
    assert report.line == 3
    assert "altered" in report.problem
    assert report.records == 2


def test_removed_record_is_reported_as_missing(tmp_path):
    path = tmp_path / "audit.jsonl"
    _append_many(str(path), 5)
    lines = path.read_text().splitlines(keepends=True)
    del lines[1]
    path.write_text("".join(lines))
    report = verify_log(path)
    assert not report.ok
    assert report.line == 2
    assert "missing" in report.problem


def test_rehashed_forgery_still_breaks_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    _append_many(str(path), 4)
    records = _records(path)
    records[1]["decision"] = "deny"
    records[1]["hash"] = record_hash(records[1])  # the forger recomputes this record's own hash
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    report = verify_log(path)
    assert not report.ok
    assert report.line == 3
    assert "chain broken" in report.problem


def test_half_written_tail_is_moved_aside_and_the_chain_continues(tmp_path):
    path = tmp_path / "audit.jsonl"
    _append_many(str(path), 3)
    with open(path, "ab") as handle:
        handle.write(b'{"decision":"allow","seq":4')  # a crash in the middle of a write
    assert not verify_log(path).ok
    _append_many(str(path), 1)
    report = verify_log(path)
    assert report.ok, report.describe()
    assert report.records == 4
    [aside] = list(tmp_path.glob("audit.jsonl.partial-*"))
    assert aside.read_bytes() == b'{"decision":"allow","seq":4'


def test_a_long_half_written_first_line_is_moved_aside_whole(tmp_path):
    path = tmp_path / "audit.jsonl"
    partial = b'{"decision":"allow","input":"' + b"x" * 40_000  # longer than one tail read, no newline
    path.write_bytes(partial)
    _append_many(str(path), 2)
    report = verify_log(path)
    assert report.ok, report.describe()
    assert report.records == 2
    assert _records(path)[0]["seq"] == 1
    [aside] = list(tmp_path.glob("audit.jsonl.partial-*"))
    assert aside.read_bytes() == partial


def test_verify_of_missing_file_fails_clearly(tmp_path):
    report = verify_log(tmp_path / "nope.jsonl")
    assert not report.ok
    assert "cannot open" in report.describe()


def test_non_ascii_and_invalid_utf8_survive_the_round_trip(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append({"input": {"command": "echo héllo \udcff"}})
    log.close()
    assert verify_log(path).ok
    assert _records(path)[0]["input"]["command"] == "echo héllo \udcff"


def test_timestamps_are_rfc3339_utc_with_microseconds(monkeypatch):
    instants_ns = iter([1_796_592_899_999_999_999, 1_796_592_900_000_123_456, 1_796_592_900_500_000_000])
    monkeypatch.setattr(audit_module.time, "time_ns", lambda: next(instants_ns))
    stamps = [utc_timestamp() for _ in range(3)]
    assert stamps == [
        "2026-12-06T21:34:59.999999Z",
        "2026-12-06T21:35:00.000123Z",  # a new second: its date and time are made again
        "2026-12-06T21:35:00.500000Z",
    ]
    for stamp in stamps:  # as datetime reads and writes RFC 3339
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert parsed.tzinfo == UTC
        assert parsed.isoformat(timespec="microseconds").replace("+00:00", "Z") == stamp


def test_a_timestamp_is_now():
    before = datetime.now(UTC)
    stamp = datetime.fromisoformat(utc_timestamp().replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC)
