"""The same decisions on the embedded engine (rego-cpp in-process), the wasm engine (OPA's Wasm
compilation in-process) and a real OPA over REST.

    .venv/bin/python benchmarks/engines.py [--extra 1000] [--rounds 1]

Starts the pinned ``opa`` on a loopback port with the policy pack (as gatekeeper-managed bundle),
then decides every call three times per round, once per engine, rotating which engine goes first,
so all see the same machine load in the same run. Reports p50/p99 of ``evaluate`` (the engine's answer
to the prepared input document, from ``Decision.timings_ms``) and of the whole ``Gatekeeper.decide``
(analysis + evaluation + conversion, no audit), and counts decisions on which the engines disagree.

Calls: every case of ``tests/corpus/*.jsonl``, the paper's replication trace, and ``--extra``
ordinary commands drawn from the NL2Bash and tldr development corpora.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.policy.embedded import EmbeddedEngine
from gatekeeper.policy.opa_binary import opa_version
from gatekeeper.policy.opa_process import ManagedOpa
from gatekeeper.policy.opa_server import OpaServerEngine
from gatekeeper.policy.wasm import WasmEngine

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "corpora"
HOME, AGENT_HOME = "/home/agent", "/home/agent/WorkSpace/Agent"


def load_calls(extra: int, seed: int = 11) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    for path in sorted((REPO / "tests" / "corpus").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            call = row.get("call") or {"tool": "shell", "arguments": {"command": row["command"]}}
            calls.append({**call, "cwd": row.get("cwd", HOME)})
    trace = SHARED / "paper-qwen25-trace.jsonl"
    if trace.is_file():
        for line in trace.read_text(encoding="utf-8").splitlines():
            step = json.loads(line)
            calls.append({"tool": "shell", "arguments": {"command": step["command"]}, "cwd": HOME})
    pool: list[str] = []
    for name in ("nl2bash-dev.jsonl", "tldr-common.jsonl"):
        path = SHARED / name
        if path.is_file():
            pool.extend(json.loads(line)["command"] for line in path.read_text(encoding="utf-8").splitlines())
    random.Random(seed).shuffle(pool)  # noqa: S311 - a reproducible sample, not a secret
    calls.extend({"tool": "shell", "arguments": {"command": c}, "cwd": HOME} for c in pool[:extra])
    return calls


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


COLUMNS = ("engine", "calls", "eval p50", "eval p99", "decide p50", "decide p99", "decisions/s")


def table_row(cells: list[str]) -> str:
    first, *rest = cells
    return f"| {first:<12} | " + " | ".join(f"{cell:>11}" for cell in rest) + " |"


def row(name: str, evaluate: list[float], decide: list[float]) -> str:
    return table_row(
        [
            name,
            str(len(decide)),
            f"{statistics.median(evaluate):.3f}",
            f"{percentile(evaluate, 0.99):.3f}",
            f"{statistics.median(decide):.3f}",
            f"{percentile(decide, 0.99):.3f}",
            f"{1000.0 / statistics.fmean(decide):,.0f}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--extra", type=int, default=1000, help="ordinary commands added from NL2Bash/tldr")
    parser.add_argument("--rounds", type=int, default=1, help="times every call is decided per engine")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured decisions per engine first")
    args = parser.parse_args()

    calls = load_calls(args.extra)
    # The engines themselves are compared: no decision cache in front of the embedded one.
    config = Config(home=HOME, agent_home=AGENT_HOME, decision_cache_size=0)
    with ManagedOpa() as opa:
        engines = {
            "embedded": Gatekeeper(config, engine=EmbeddedEngine()),
            "wasm": Gatekeeper(config, engine=WasmEngine()),
            "opa (REST)": Gatekeeper(config, engine=OpaServerEngine(opa.url, timeout_s=5.0)),
        }
        for gatekeeper in engines.values():
            for call in calls[: args.warmup]:
                gatekeeper.decide(call)

        evaluate: dict[str, list[float]] = {name: [] for name in engines}
        decide: dict[str, list[float]] = {name: [] for name in engines}
        disagreements: list[str] = []
        errors = dict.fromkeys(engines, 0)
        order = list(engines)
        for _round in range(args.rounds):
            for index, call in enumerate(calls):
                answers = {}
                for name in order[index % len(order) :] + order[: index % len(order)]:
                    started = time.perf_counter()
                    decision = engines[name].decide(call)
                    decide[name].append((time.perf_counter() - started) * 1000.0)
                    if "evaluate" in decision.timings_ms:
                        evaluate[name].append(decision.timings_ms["evaluate"])
                    errors[name] += decision.error is not None
                    answers[name] = (decision.decision.value, sorted(v.rule for v in decision.violations))
                if len(set(map(repr, answers.values()))) > 1:
                    disagreements.append(f"{json.dumps(call)[:160]}: {answers}")
        for gatekeeper in engines.values():
            gatekeeper.close()
        opa_label = f"opa {opa_version(opa.binary)}"

    print(
        f"{len(calls)} calls x {args.rounds} round(s) per engine, one run; "
        f"python {platform.python_version()}, "
        f"{opa_label}, {os.cpu_count()} CPUs ({platform.machine()}), "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    print()
    print(table_row(list(COLUMNS)))
    print("|" + "-" * 14 + "|" + "|".join(["-" * 12 + ":"] * (len(COLUMNS) - 1)) + "|")
    for name in engines:
        print(row(name, evaluate[name], decide[name]))
    print()
    print("milliseconds; eval = the engine's answer to the prepared input (OPA: HTTP on loopback);")
    print("decide = Gatekeeper.decide, no audit (analysis + evaluation + Decision); decisions/s = 1/mean")
    print(f"decisions with an error: {errors}")
    print(f"disagreements between the engines: {len(disagreements)}")
    for line in disagreements[:20]:
        print(f"  {line}")
    sys.exit(1 if disagreements else 0)


if __name__ == "__main__":
    main()
