"""The OPA server engine: a running ``opa`` queried over REST through opa-python-client.

``POST /v1/data/gatekeeper/decision?provenance=true`` with ``{"input": document}``. Every failure is
raised as an EngineError subclass so :func:`~gatekeeper.policy.engine.decision_from_result` turns it
into a deny: connection refused (EngineUnavailable), timeout (EngineTimeout), HTTP 4xx/5xx
(EngineError, code ``engine_http_error``), a body that is not JSON (EngineResultError). A response
without ``result`` is OPA's way of saying "undefined" and is returned as ``UNDEFINED``.
"""

from __future__ import annotations

import ipaddress
import threading
from typing import Any
from urllib.parse import urlsplit

import requests
from opa_client.opa import OpaClient
from requests.adapters import HTTPAdapter

from gatekeeper.errors import EngineError, EngineResultError, EngineTimeout, EngineUnavailable, ErrorCode
from gatekeeper.policy.engine import UNDEFINED

PACKAGE, RULE = "gatekeeper", "decision"


class OpaServerEngine:
    """PolicyEngine that asks a running OPA; the policies' revision comes from OPA's provenance."""

    name = "opa"

    def __init__(
        self, url: str = "http://127.0.0.1:8181", *, timeout_s: float = 0.5, token: str | None = None
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EngineError(f"OPA url must look like http://host:port, not {url!r}")
        self.url = url
        self.timeout_s = timeout_s
        # No retries: a slow or failing OPA must turn into a prompt deny, not a longer wait.
        self._client = OpaClient(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 80),
            ssl=parts.scheme == "https",
            token=token,
            retries=0,
            timeout=timeout_s,
        )
        _tune_session(self._client, loopback=_is_loopback(parts.hostname))
        self._revision: str | None = None
        self._lock = threading.Lock()

    @property
    def revision(self) -> str | None:
        return self._revision

    def evaluate(self, document: dict[str, Any]) -> Any:
        try:
            body = self._client.query_rule(document, PACKAGE, RULE, query_params={"provenance": True})
        except requests.exceptions.Timeout as error:
            raise EngineTimeout(f"OPA at {self.url} did not answer within {self.timeout_s:g}s") from error
        except requests.exceptions.ConnectionError as error:
            raise EngineUnavailable(f"OPA at {self.url} is unreachable: {_reason(error)}") from error
        except requests.exceptions.HTTPError as error:
            raise EngineError(
                _http_error_message(self.url, error), code=ErrorCode.ENGINE_HTTP_ERROR
            ) from error
        except requests.exceptions.JSONDecodeError as error:
            raise EngineResultError(f"OPA at {self.url} answered with a body that is not JSON") from error
        except requests.exceptions.RequestException as error:
            raise EngineUnavailable(f"OPA request to {self.url} failed: {_reason(error)}") from error
        if not isinstance(body, dict):
            raise EngineResultError(f"OPA at {self.url} answered with a {type(body).__name__}, not an object")
        self._note_revision(body.get("provenance"))
        return body.get("result", UNDEFINED)

    def _note_revision(self, provenance: Any) -> None:
        bundles = provenance.get("bundles") if isinstance(provenance, dict) else None
        if not isinstance(bundles, dict):
            return
        revisions = sorted(
            str(info["revision"])
            for info in bundles.values()
            if isinstance(info, dict) and info.get("revision")
        )
        if revisions:
            with self._lock:
                self._revision = ",".join(revisions)

    def close(self) -> None:
        self._client.close_connection()


# Connections kept to OPA: one per deciding thread (16 by default). requests' default of 10 closed
# the connection of every thread beyond the tenth after each query.
POOL_CONNECTIONS = 64


def _tune_session(client: OpaClient, *, loopback: bool) -> None:
    """Keep a connection per thread, and skip requests' per-call environment lookups on loopback.

    With ``trust_env`` requests reads ``~/.netrc``, the proxy variables and the CA-bundle variables
    for every query: about a tenth of gatekeeper's CPU per decision against a local OPA, where no
    proxy, netrc login or CA bundle applies. A remote OPA keeps them (a proxy may be needed).
    """
    session = getattr(client, "_session", None)  # opa-python-client's requests.Session
    if not isinstance(session, requests.Session):
        return
    for prefix in ("http://", "https://"):
        retries = session.get_adapter(prefix).max_retries  # type: ignore[attr-defined]
        session.mount(prefix, HTTPAdapter(pool_maxsize=POOL_CONNECTIONS, max_retries=retries))
    if loopback:
        session.trust_env = False


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reason(error: Exception) -> str:
    text = str(error)
    if "Connection refused" in text:
        return "connection refused"
    return text.splitlines()[0][:200] if text else type(error).__name__


def _http_error_message(url: str, error: requests.exceptions.HTTPError) -> str:
    response = error.response
    status = response.status_code if response is not None else "?"
    detail = ""
    if response is not None:
        try:
            payload = response.json()
            detail = f": {payload.get('code', '')} {payload.get('message', '')}".rstrip()
            detail += _first_opa_error(payload)
        except (ValueError, AttributeError):
            detail = f": {response.text[:200]}"
    return f"OPA at {url} answered HTTP {status}{detail}"


def _first_opa_error(payload: Any) -> str:
    """OPA's ErrorV1 nests the actual cause (``eval_conflict_error: ...``) in ``errors[]``."""
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return ""
    first = errors[0]
    message = " ".join(str(first.get("message", "")).split())
    return f" ({first.get('code', 'error')}: {message[:300]})"
