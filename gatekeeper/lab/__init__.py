"""Mitigation-effectiveness lab: replay self-replication for real in a sandbox, with and without gatekeeper.

    scenarios (JSONL) → testbed (sandbox, agent + model server running) → runner (baseline and
    gatekeeper arms, call by call) → liveness (did a replica answer /health from outside the home?)
    → report (markdown + HTML with plots)

    corpora (JSONL) + labels → evaluate (recall per family, false-positive rate) → report

``gatekeeper lab run --all --report out/`` and ``gatekeeper eval --corpus FILE`` are the front ends.
"""
