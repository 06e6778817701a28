"""Prometheus metrics of the service, in a registry of its own (no process-wide globals).

gatekeeper_decisions_total{outcome, family}      one per decision; family of the deciding rule,
                                                  "none" without violations, "error" when failing closed
gatekeeper_violations_total{family, rule, action} one per violation
gatekeeper_decision_duration_seconds              analyse + evaluate + audit, per decision
gatekeeper_engine_errors_total{code}              decisions made because something failed
gatekeeper_http_requests_total{route, status}     every request, by route template
gatekeeper_executions_total{outcome}              commands run: ok, nonzero, timeout, error
gatekeeper_approvals_total{status}                verdicts: approved, denied, expired
gatekeeper_approvals_pending, gatekeeper_sessions, gatekeeper_session_history_bytes
gatekeeper_decision_cache_lookups{result}         decision-cache hits and misses (since start)
gatekeeper_forwarded_requests_total{owner, status} calls sent to the worker owning their session
gatekeeper_policy_info{revision, engine}

With ``--workers N`` each worker keeps its own registry and ``/metrics`` shows them all, every sample
labelled ``worker`` (:func:`merge_worker_metrics`): sum over it for the service's totals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from gatekeeper.models import Decision

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Decisions take from a fraction of a millisecond (cache-warm allow) to seconds (OPA timeouts).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = Counter(
            "gatekeeper_decisions", "Decisions by outcome and rule family.", ["outcome", "family"], registry=r
        )
        self.violations = Counter(
            "gatekeeper_violations", "Policy violations by rule.", ["family", "rule", "action"], registry=r
        )
        self.latency = Histogram(
            "gatekeeper_decision_duration_seconds",
            "Time to decide one call (analyse, evaluate, audit).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.engine_errors = Counter(
            "gatekeeper_engine_errors",
            "Decisions made because something failed, by code.",
            ["code"],
            registry=r,
        )
        self.requests = Counter(
            "gatekeeper_http_requests", "HTTP requests by route and status.", ["route", "status"], registry=r
        )
        self.executions = Counter(
            "gatekeeper_executions", "Commands run by /v1/execute, by outcome.", ["outcome"], registry=r
        )
        self.approvals = Counter(
            "gatekeeper_approvals", "Approval verdicts by status.", ["status"], registry=r
        )
        self.approvals_pending = Gauge(
            "gatekeeper_approvals_pending", "Approvals waiting for a verdict.", registry=r
        )
        self.sessions = Gauge("gatekeeper_sessions", "Sessions remembered.", registry=r)
        self.session_bytes = Gauge(
            "gatekeeper_session_history_bytes", "Bytes of session history (and ids) remembered.", registry=r
        )
        self.policy = Info("gatekeeper_policy", "The policies answering.", registry=r)
        self.cache_lookups = Gauge(
            "gatekeeper_decision_cache_lookups",
            "Decision-cache lookups since start, by result (hit, miss).",
            ["result"],
            registry=r,
        )
        self.overdue = Gauge(
            "gatekeeper_engine_overdue_evaluations",
            "Embedded-engine evaluations past their deadline (already denied) that still run.",
            registry=r,
        )
        self.inline_budget_exceeded = Counter(
            "gatekeeper_inline_budget_exceeded",
            "Evaluations on the event loop (wasm engine) that needed more than their budget and were "
            "evaluated again on a deciding thread.",
            registry=r,
        )
        self.forwarded = Counter(
            "gatekeeper_forwarded_requests",
            "Requests sent to the worker that owns their session, by owner and answer status.",
            ["owner", "status"],
            registry=r,
        )

    def observe_decision(self, decision: Decision, seconds: float) -> None:
        self.latency.observe(seconds)
        self.decisions.labels(decision.decision.value, deciding_family(decision)).inc()
        for violation in decision.violations:
            self.violations.labels(violation.family, violation.rule, violation.action).inc()
        if decision.error is not None:
            self.engine_errors.labels(decision.error.code).inc()

    def bind_gauges(
        self,
        *,
        pending: Callable[[], float],
        sessions: Callable[[], float],
        session_bytes: Callable[[], float],
        cache_hits: Callable[[], float],
        cache_misses: Callable[[], float],
        overdue: Callable[[], float],
    ) -> None:
        self.approvals_pending.set_function(pending)
        self.overdue.set_function(overdue)
        self.sessions.set_function(sessions)
        self.session_bytes.set_function(session_bytes)
        # Read when /metrics is scraped: the cache counts its own lookups, nothing to do per call.
        self.cache_lookups.labels("hit").set_function(cache_hits)
        self.cache_lookups.labels("miss").set_function(cache_misses)

    def set_policy(self, revision: str | None, engine: str) -> None:
        self.policy.info({"revision": revision or "", "engine": engine})

    def render(self) -> bytes:
        return generate_latest(self.registry)


def deciding_family(decision: Decision) -> str:
    """The family of the first violation that produced the outcome (else the first violation's)."""
    if decision.error is not None:
        return "error"
    if not decision.violations:
        return "none"
    outcome = (decision.policy_decision or decision.decision).value
    for violation in decision.violations:
        if violation.action == outcome:
            return violation.family
    return decision.violations[0].family


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def merge_worker_metrics(expositions: Mapping[int, str]) -> bytes:
    """One exposition of several workers' metrics; every sample gains the label ``worker``."""
    families: dict[str, Metric] = {}
    for worker, text in sorted(expositions.items()):
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation, family.type)
            for sample in family.samples:
                merged.samples.append(sample._replace(labels={**sample.labels, "worker": str(worker)}))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families.values()))
    return generate_latest(registry)
