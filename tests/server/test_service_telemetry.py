"""FastAPI's own OpenTelemetry instrumentation: off unless the ``server.opentelemetry`` setting asks.

The process's tracer provider is set once (OpenTelemetry allows one), with an in-memory exporter; a
server then records spans for its requests only when the setting is on.
"""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from service_helpers import shell

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _tracer_provider():
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)
    yield


def _spans_of_one_decision(served) -> list:
    EXPORTER.clear()
    assert served.agent.post("/v1/decide", json=shell("ls")).status_code == 200
    return list(EXPORTER.get_finished_spans())


def test_requests_are_traced_when_asked_for(make_server):
    spans = _spans_of_one_decision(make_server(opentelemetry=True))
    assert spans
    assert any(span.attributes.get("http.request.method") == "POST" for span in spans)


def test_no_traces_by_default_even_with_a_provider_configured(make_server):
    assert _spans_of_one_decision(make_server()) == []
