"""The garbage collector's settings for a long-running service process.

A decision allocates thousands of short-lived container objects (the facts, the policy input, the
answer), nearly all freed by reference counting. With the interpreter's default thresholds
(700, 10, 10) a worker under load still ran a young collection every eight decisions and, every
few seconds, a full one over the whole heap the start-up built (the web framework, the analyser's
tables, the compiled policies): 40-50 ms each, and with the young ones about 5% of a worker's
CPU (``benchmarks/load.py``, docs/service.md). Fewer young collections, and the start-up heap frozen
out of the full ones, leave the collector under 2%.
"""

from __future__ import annotations

import gc

# A young collection after 20,000 net allocations (a few hundred decisions), an older one after 10
# of those, a full one after 10 older ones: cyclic garbage is still found, within seconds.
SERVICE_THRESHOLDS = (20_000, 10, 10)


def tune_for_service() -> None:
    """Freeze what start-up allocated (it lives as long as the process) and raise the thresholds.
    Call once the service is built, before it takes requests."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVICE_THRESHOLDS)
