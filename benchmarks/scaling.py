"""How long one decision takes as a call grows, on both engines.

    .venv/bin/python benchmarks/scaling.py [--sizes 10,100,400] [--shapes sequence,find_exec]
        [--engine both|embedded|opa]

Each shape (gatekeeper.testing.GROWING_COMMANDS) repeats one part n times: a command, a pipeline
stage, an operand, a redirection, a substitution, a python call. For every shape and size the
script decides the call once per engine, decision cache off, and prints the engine's evaluation
time (``timings_ms.evaluate``) and the decision. OPA is the pinned binary, started on a loopback
port with the policy pack; OPA's client timeout is raised to 60 s so that a slow evaluation is
measured instead of denied. tests/test_policy_scaling.py holds the growth to linear by counting
OPA's evaluations, which is exact; the times here show what that means on this machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from contextlib import ExitStack

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.models import ToolCall
from gatekeeper.policy.embedded import EmbeddedEngine
from gatekeeper.policy.opa_process import ManagedOpa
from gatekeeper.policy.opa_server import OpaServerEngine
from gatekeeper.testing import GROWING_COMMANDS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,400", help="comma-separated repeat counts")
    parser.add_argument("--shapes", default=",".join(GROWING_COMMANDS), help="comma-separated shapes")
    parser.add_argument("--engine", choices=("both", "embedded", "opa"), default="both")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    shapes = args.shapes.split(",")
    unknown = sorted(set(shapes) - set(GROWING_COMMANDS))
    if unknown:
        parser.error(f"unknown shapes {unknown}; known: {', '.join(GROWING_COMMANDS)}")
    config = Config(decision_cache_size=0)
    with ExitStack() as stack:
        engines: dict[str, Gatekeeper] = {}
        if args.engine in ("both", "embedded"):
            # No deadline: this measures how long the largest calls take (OPA gets 60 s below).
            embedded = EmbeddedEngine(timeout_s=None)
            engines["embedded"] = stack.enter_context(Gatekeeper(config, engine=embedded))
        if args.engine in ("both", "opa"):
            opa = stack.enter_context(ManagedOpa())
            engine = OpaServerEngine(opa.url, timeout_s=60.0)
            engines["opa"] = stack.enter_context(Gatekeeper(config, engine=engine))
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}; "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        print(f"{'shape':16} {'n':>5} " + " ".join(f"{name + ' ms':>14}" for name in engines) + "  decision")
        for shape in shapes:
            for size in sizes:
                call = ToolCall(tool="shell", arguments={"command": GROWING_COMMANDS[shape](size)})
                times, outcomes = [], set()
                for gatekeeper in engines.values():
                    decision = gatekeeper.decide(call)
                    times.append(decision.timings_ms.get("evaluate", float("nan")))
                    outcomes.add(
                        decision.decision.value + (f" ({decision.error.code})" if decision.error else "")
                    )
                cells = " ".join(f"{ms:14.1f}" for ms in times)
                print(f"{shape:16} {size:5d} {cells}  {' / '.join(sorted(outcomes))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
