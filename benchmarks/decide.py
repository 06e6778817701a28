"""Latency and throughput of one decision, step by step, on an in-process engine.

    .venv/bin/python benchmarks/decide.py [--calls 3000] [--batch 5000] [--engine embedded|wasm]

Reports p50/p99 of: analyse (tool call -> facts), evaluate (facts -> policy answer), the whole
decision without and with the fsync'd audit log, and the throughput of `gatekeeper check --input`
on a batch file (one process, start-up included). Commands are drawn from the development corpora
(NL2Bash, tldr) and the project's labelled corpus, so the mix is ordinary work plus attacks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gatekeeper.analysis import AnalysisOptions, analyse_call, facts_to_dict
from gatekeeper.audit import AuditLog
from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper, build_engine
from gatekeeper.models import ToolCall

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "corpora"


def sample_commands(count: int, seed: int = 7) -> list[str]:
    pool: list[str] = []
    for name in ("nl2bash-dev.jsonl", "tldr-common.jsonl"):
        path = SHARED / name
        if path.is_file():
            pool.extend(json.loads(line)["command"] for line in path.read_text().splitlines())
    for path in sorted((REPO / "tests" / "corpus").glob("*.jsonl")):
        pool.extend(
            json.loads(line)["command"]
            for line in path.read_text().splitlines()
            if line.strip() and "command" in json.loads(line)
        )
    random.Random(seed).shuffle(pool)  # noqa: S311 - a reproducible sample, not a secret
    return pool[:count]


def percentiles(samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   mean {statistics.fmean(ordered):7.3f} ms"


def timed(function: Callable[[Any], object], items: Sequence[Any]) -> list[float]:
    samples: list[float] = []
    for item in items:
        started = time.perf_counter()
        function(item)
        samples.append((time.perf_counter() - started) * 1000.0)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3000, help="calls measured per step")
    parser.add_argument("--batch", type=int, default=5000, help="calls in the batch-throughput file")
    parser.add_argument("--engine", choices=("embedded", "wasm"), default="embedded")
    args = parser.parse_args()

    load_before = f"{os.getloadavg()[0]:.2f}"
    commands = sample_commands(max(args.calls, args.batch))
    calls = [ToolCall.shell(c, cwd="/home/agent") for c in commands[: args.calls]]
    options = AnalysisOptions(home="/home/agent")
    # Cache off: every decision below reaches the engine. The cached case is measured on its own.
    config = Config(
        home="/home/agent",
        agent_home="/home/agent/WorkSpace/Agent",
        decision_cache_size=0,
        engine=args.engine,
    )

    started = time.perf_counter()
    engine = build_engine(config)
    compile_ms = (time.perf_counter() - started) * 1000.0
    gatekeeper = Gatekeeper(config, engine=engine)
    for call in calls[:200]:  # warm caches (parser, per-thread bundle)
        gatekeeper.decide(call)

    analyse_ms = timed(lambda call: analyse_call(call, options), calls)
    documents = [
        {
            "call": call.model_dump(mode="json", exclude_none=True),
            "facts": facts_to_dict(analyse_call(call, options)),
            "session": {},
            "context": {"home": "/home/agent", "agent_home": "/home/agent/WorkSpace/Agent"},
        }
        for call in calls
    ]
    evaluate_ms = timed(engine.evaluate, documents)
    decide_ms = timed(gatekeeper.decide, calls)
    cached = Gatekeeper(config.model_copy(update={"decision_cache_size": 4096}), engine=engine)
    for call in calls:
        cached.decide(call)
    decide_cached_ms = timed(cached.decide, calls)  # the same calls again: every one a cache hit
    with tempfile.TemporaryDirectory() as directory:
        audited = Gatekeeper(config, engine=engine, audit=AuditLog(Path(directory) / "audit.jsonl"))
        decide_audited_ms = timed(audited.decide, calls)
        audited.audit.close()  # type: ignore[union-attr]

        batch = Path(directory) / "calls.jsonl"
        batch.write_text("".join(json.dumps({"command": c}) + "\n" for c in commands[: args.batch]))
        env = {
            **os.environ,
            "GATEKEEPER_AUDIT_LOG": str(Path(directory) / "batch-audit.jsonl"),
            "GATEKEEPER_DECISION_CACHE": "0",
            "GATEKEEPER_ENGINE": args.engine,
        }
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gatekeeper",
                "check",
                "--input",
                str(batch),
                "--output",
                str(Path(directory) / "out.jsonl"),
            ],
            env=env,
            check=False,
            capture_output=True,
        )
        batch_s = time.perf_counter() - started

    load_after, cpus = f"{os.getloadavg()[0]:.2f}", os.cpu_count()
    print(f"engine {args.engine}; load average before/after: {load_before} / {load_after} on {cpus} CPUs")
    print(f"policy compile (once per process): {compile_ms:.1f} ms")
    print(f"analyse          ({len(calls)} calls): {percentiles(analyse_ms)}")
    print(f"evaluate         ({len(calls)} calls): {percentiles(evaluate_ms)}")
    print(f"decide, no audit ({len(calls)} calls): {percentiles(decide_ms)}")
    print(f"decide + audit   ({len(calls)} calls): {percentiles(decide_audited_ms)}")
    print(f"decide, cache hit({len(calls)} calls): {percentiles(decide_cached_ms)}")
    print(
        f"batch `gatekeeper check --input` of {args.batch} calls: {batch_s:.2f} s, "
        f"{args.batch / batch_s:,.0f} decisions/s (process start-up and fsync'd audit included)"
    )


if __name__ == "__main__":
    main()
