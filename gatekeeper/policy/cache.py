"""A bounded cache of policy answers for the embedded engine.

rego-cpp evaluates the policy pack in milliseconds, while agents repeat the same calls (`ls`, `git
status`, `pytest`) all day. The answer depends only on the policy revision and the policy input, so
identical inputs under the same revision get the stored answer. The key leaves out the call's
``id`` and ``session_id``, which only correlate records: policies must not decide on them.
Only clean answers (objects) are stored; errors are never cached, so a failure is retried.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

CORRELATION_FIELDS = frozenset({"id", "session_id"})


class DecisionCache:
    """Least-recently-used map from (revision, policy input) to the engine's answer."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(revision: str | None, document: Mapping[str, Any]) -> str | None:
        """The cache key, or None when the input cannot be keyed (it is then never cached)."""
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
        return hashlib.sha256(f"{revision}\n{text}".encode("utf-8", "surrogatepass")).hexdigest()

    def get(self, key: str | None) -> dict[str, Any] | None:
        if key is None or self.size == 0:
            return None
        with self._lock:
            answer = self._entries.get(key)
            if answer is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return answer

    def put(self, key: str | None, answer: Any) -> None:
        if key is None or self.size == 0 or not isinstance(answer, dict):
            return
        with self._lock:
            self._entries[key] = answer
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
