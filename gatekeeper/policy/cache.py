"""A bounded cache of decisions: (policy revision, everything the analyser and the policies see) → answer.

Agents repeat the same calls all day (`ls`, `git status`, `pytest`), and deciding one costs far more
than looking it up: the analysis (a pure function of the call and the fixed analysis options) and the
policy evaluation (a pure function of the input document under one revision). The key is the policy
revision plus ``input.call``, ``input.session`` and ``input.context``; it leaves out the call's ``id``
and ``session_id``, which only correlate records: policies must not decide on them (``input.session``,
history included, is in the key, so sequence rules still see every earlier call). An entry holds the
facts and the engine's answer; only clean answers (objects) are stored, errors never, so a failure is
retried.

Freshness. A revision that changes invalidates every entry (it is in the key). The embedded engine
knows its revision at every call, so its cache is on by default. A remote engine (OPA) only reports its
revision with an answer, and may also go away, so its cache is off unless asked for with a maximum
age: entries are then served only while the engine has answered cleanly within the last
``max_age_s`` seconds. When every call hits, one call per ``max_age_s`` still reaches the engine and
notices a new revision or an outage (then nothing is served until it answers again, and calls fail
closed). It is a trade: for up to ``max_age_s`` a policy change or an outage goes unnoticed by calls
already seen, which is why it is opt-in (``gatekeeper serve --opa-cache-max-age``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from gatekeeper.policy.engine import IN_PROCESS_ENGINES

CORRELATION_FIELDS = frozenset({"id", "session_id"})
# Memory, not count, is what must stay bounded: an entry holds its call's facts, about 1.5 KB of
# Python objects per command (1.5 MB for a 3,000-character line of 1,000 `ls`). Calls past either
# limit are rarely repeated and are never kept, so 4,096 entries stay within a few hundred MB.
MAX_KEYED_CHARS = 16 * 1024
MAX_CACHED_COMMANDS = 64


class DecisionCache:
    """Least-recently-used map from (revision, policy input without facts) to a stored decision."""

    def __init__(self, size: int, *, max_age_s: float | None = None) -> None:
        self.size = size
        self.max_age_s = max_age_s
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._confirmed = float("-inf")  # when the engine last answered cleanly (monotonic)

    @classmethod
    def for_engine(cls, engine_name: str, size: int, *, remote_max_age_s: float = 0.0) -> DecisionCache:
        """An in-process engine's cache; OPA's only with ``remote_max_age_s`` > 0; none for others."""
        if engine_name in IN_PROCESS_ENGINES:
            return cls(size)
        if engine_name == "opa" and remote_max_age_s > 0:
            return cls(size, max_age_s=remote_max_age_s)
        return cls(0)

    @staticmethod
    def key(revision: str | None, document: Mapping[str, Any]) -> str | None:
        """The cache key, or None when the input cannot be keyed or is too long to keep (it is then
        never cached)."""
        if revision is None:
            return None
        call = document.get("call")
        keyed = dict(document)
        if isinstance(call, Mapping):
            keyed["call"] = {k: v for k, v in call.items() if k not in CORRELATION_FIELDS}
        try:
            text = json.dumps(keyed, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):
            return None
        if len(text) > MAX_KEYED_CHARS:
            return None
        return hashlib.sha256(f"{revision}\n{text}".encode("utf-8", "surrogatepass")).hexdigest()

    def get(self, key: str | None, *, count_miss: bool = True) -> Any | None:
        """The stored entry, or None (a miss) when absent or when the engine is not known to be fresh.

        ``count_miss=False`` for a look that a full lookup will follow (the service probes the cache
        on its event loop before deciding on a thread), so each call counts once.
        """
        if key is None or self.size == 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or not self._fresh():
                self.misses += count_miss
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def confirm(self) -> None:
        """The engine has just answered cleanly: its revision is current and it is up."""
        self._confirmed = time.monotonic()

    def put(self, key: str | None, entry: Any, answer: Any = None) -> None:
        """Store ``entry`` (which holds ``answer``, by default ``entry`` itself) when ``answer`` is a
        clean decision object."""
        if answer is None:
            answer = entry
        if key is None or self.size == 0 or not isinstance(answer, dict):
            return
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def _fresh(self) -> bool:
        return self.max_age_s is None or time.monotonic() - self._confirmed <= self.max_age_s

    def __len__(self) -> int:
        return len(self._entries)
