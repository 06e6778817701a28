"""OPA's CPU per decision and memory under Go garbage-collector settings, OPA alone.

    .venv/bin/python benchmarks/opa_gc.py [--calls 3000] [--threads 4] [--rounds 2]
        [--settings default,200,400,800,off:256MiB]

The calls are load.py's ``unique`` workload (every call new, so nothing is answered twice in the
same way), analysed once by gatekeeper into the input documents it sends to OPA. For every setting
the script starts the pinned OPA with the policy pack and that ``GOGC`` (``off:LIMIT`` is
``GOGC=off GOMEMLIMIT=LIMIT``; ``default`` is Go's own 100), sends the first 200 documents to warm
it, then all of them from ``--threads`` keep-alive connections, and reports OPA's CPU per decision
(from /proc), the rate, and OPA's resident memory at the end. Settings alternate within each round,
so they see the same machine load. docs/opa.md ("OPA's garbage collector") has the figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.policy.opa_process import ManagedOpa
from gatekeeper.testing import StaticEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import process_tree_cpu_s, request_bodies

ALLOW = {"decision": "allow", "policy_decision": "allow", "mode": "enforce", "violations": []}
DECISION_PATH = "/v1/data/gatekeeper/decision"
WARM_UP = 200


def input_documents(count: int) -> list[bytes]:
    """The request bodies gatekeeper would send OPA for ``count`` new calls."""
    recorder = StaticEngine(ALLOW)
    gatekeeper = Gatekeeper(Config(decision_cache_size=0), engine=recorder)
    for body in request_bodies(count, sessions=0, seed=7, workload="unique"):
        gatekeeper.decide(json.loads(body))
    return [json.dumps({"input": document}).encode() for document in recorder.documents]


@contextmanager
def go_environment(setting: str) -> Iterator[None]:
    """``GOGC`` (and ``GOMEMLIMIT``) as ``setting`` says, for the OPA started inside."""
    saved = {name: os.environ.get(name) for name in ("GOGC", "GOMEMLIMIT")}
    os.environ.pop("GOMEMLIMIT", None)
    if setting == "default":
        os.environ["GOGC"] = "100"
    elif setting.startswith("off:"):
        os.environ["GOGC"], os.environ["GOMEMLIMIT"] = "off", setting.split(":", 1)[1]
    else:
        os.environ["GOGC"] = setting
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def post_all(port: int, bodies: list[bytes], threads: int) -> None:
    pending = iter(bodies)
    lock = threading.Lock()
    failures: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                body = next(pending, None)
            if body is None:
                break
            connection.request("POST", DECISION_PATH, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200 or b'"result"' not in answer:
                failures.append(f"HTTP {response.status}: {answer[:200]!r}")
        connection.close()

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, the first: {failures[0]}")


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(setting: str, bodies: list[bytes], threads: int) -> dict[str, Any]:
    with go_environment(setting), ManagedOpa() as opa:
        assert opa.pid is not None
        post_all(opa.port, bodies[:WARM_UP], 1)
        cpu_before, started = process_tree_cpu_s(opa.pid), time.perf_counter()
        post_all(opa.port, bodies, threads)
        elapsed, cpu_after = time.perf_counter() - started, process_tree_cpu_s(opa.pid)
        memory = resident_mb(opa.pid)
    if cpu_before is None or cpu_after is None:
        raise SystemExit("OPA's CPU time is read from /proc, which this system does not have")
    return {
        "setting": setting,
        "cpu_ms_per_decision": round(1000 * (cpu_after - cpu_before) / len(bodies), 3),
        "decisions_per_s": round(len(bodies) / elapsed),
        "rss_mb": round(memory),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settings", default="default,200,400,800,off:256MiB")
    args = parser.parse_args()
    bodies = input_documents(args.calls)
    machine = f"{platform.machine()}, {os.cpu_count()} cpus"
    print(f"machine: {machine}; {len(bodies)} new calls, {args.threads} threads")
    for round_number in range(1, args.rounds + 1):
        for setting in args.settings.split(","):
            result = measure(setting, bodies, args.threads)
            print(
                f"round {round_number}  GOGC {setting:>12}"
                f"  CPU {result['cpu_ms_per_decision']:.3f} ms/decision"
                f"  {result['decisions_per_s']:>5}/s  RSS {result['rss_mb']} MB",
                flush=True,
            )


if __name__ == "__main__":
    main()
