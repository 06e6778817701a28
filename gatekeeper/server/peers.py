"""How the workers of ``gatekeeper serve --workers N`` reach each other: private Unix sockets.

A worker forwards a call of a session it does not own to the owner and relays the owner's answer as
it came; ``/metrics`` and an admin reload ask every worker. The supervisor makes a secret for each
run (the peer token) and only requests carrying it reach the ``/internal`` routes, which the public
API does not list; the sockets themselves are in a directory only the service's user can open.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from gatekeeper.errors import ErrorCode, PolicyLoadError
from gatekeeper.server.http import ApiError, json_response
from gatekeeper.server.service import Service
from gatekeeper.server.workers import WorkerPlan

PEER_HEADER = "x-gatekeeper-peer"
# Request headers the owner needs to answer as this worker would have (authorisation, body type).
_FORWARDED_REQUEST_HEADERS = ("authorization", "content-type")
_RELAYED_RESPONSE_HEADERS = ("content-type", "www-authenticate")
PEER_QUERY_TIMEOUT_S = 10.0
_Answer = TypeVar("_Answer")


class PeerError(Exception):
    """Another worker could not be reached or did not answer in time."""


@dataclass(frozen=True, slots=True)
class PeerAnswer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class UnixHttpClient:
    """HTTP/1.1 to one worker over its Unix socket, with keep-alive connections reused.

    Deliberately small: it talks only to gatekeeper's own uvicorn workers, whose answers always
    carry ``Content-Length``. A general client (httpx) spent about 40% of a forwarding worker's CPU
    on connection-pool bookkeeping and async-library detection under load.
    """

    def __init__(self, path: str, *, max_idle: int = 64) -> None:
        self.path = path
        self.max_idle = max_idle
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(
        self, method: str, target: str, *, headers: dict[str, str], body: bytes = b"", timeout_s: float
    ) -> PeerAnswer:
        try:
            return await asyncio.wait_for(self._request(method, target, headers, body), timeout_s)
        except TimeoutError:
            raise PeerError(f"no answer within {timeout_s:g} s") from None
        except (OSError, EOFError, ValueError, asyncio.LimitOverrunError) as error:
            described = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            raise PeerError(described) from None

    async def _request(self, method: str, target: str, headers: dict[str, str], body: bytes) -> PeerAnswer:
        head = f"{method} {target} HTTP/1.1\r\nhost: gatekeeper-worker\r\ncontent-length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        message = head.encode("latin-1") + b"\r\n" + body
        while self._idle:
            # uvicorn closes a connection idle for 5 s. One it closed just as the request was sent
            # fails before any answer arrives: the request was not handled, so it is sent again.
            connection = self._idle.pop()
            if connection[0].at_eof() or connection[1].is_closing():
                connection[1].close()
                continue
            try:
                return await self._exchange(connection, message, reused=True)
            except _Stale:
                continue
        connection = await asyncio.open_unix_connection(self.path)
        return await self._exchange(connection, message, reused=False)

    async def _exchange(
        self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], message: bytes, *, reused: bool
    ) -> PeerAnswer:
        reader, writer = connection
        try:
            try:
                writer.write(message)
                await writer.drain()
                status_line = await reader.readuntil(b"\r\n")
            except (OSError, asyncio.IncompleteReadError) as error:
                partial = isinstance(error, asyncio.IncompleteReadError) and error.partial
                if reused and not partial:
                    raise _Stale from None
                raise
            status = int(status_line.split(b" ", 2)[1])
            headers: dict[str, str] = {}
            while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            if "content-length" not in headers:
                raise ValueError("the worker's answer has no Content-Length")
            body = await reader.readexactly(int(headers["content-length"]))
        except (OSError, EOFError, ValueError, asyncio.LimitOverrunError, asyncio.CancelledError, _Stale):
            writer.close()
            raise
        if headers.get("connection", "").lower() == "close" or len(self._idle) >= self.max_idle:
            writer.close()
        else:
            self._idle.append(connection)
        return PeerAnswer(status, headers, body)

    def close(self) -> None:
        for _reader, writer in self._idle:
            writer.close()
        self._idle.clear()


class _Stale(Exception):
    """A reused connection closed before answering (so the request was not handled)."""


class Peers:
    """This worker's view of the others: forward to one, or ask them all."""

    def __init__(self, plan: WorkerPlan, *, forward_timeout_s: float) -> None:
        self.plan = plan
        self.forward_timeout_s = forward_timeout_s
        self._clients = {index: UnixHttpClient(plan.socket_path(index)) for index in plan.peers()}

    def owner_elsewhere(self, session_id: Any) -> int | None:
        """The worker that owns ``session_id`` when it is not this one; else None (decide here)."""
        if not isinstance(session_id, str) or not session_id:
            return None
        owner = self.plan.owner_of(session_id)
        return None if owner == self.plan.index else owner

    def is_peer(self, request: Request) -> bool:
        offered = request.headers.get(PEER_HEADER, "")
        return hmac.compare_digest(offered.encode(), self.plan.peer_token.encode())

    async def forward(self, request: Request, owner: int, body: bytes) -> Response:
        """Send the request to ``owner`` and relay its answer (PeerError if it cannot)."""
        present = request.headers
        headers = {name: present[name] for name in _FORWARDED_REQUEST_HEADERS if name in present}
        headers[PEER_HEADER] = self.plan.peer_token
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        answer = await self._clients[owner].request(
            request.method, target, headers=headers, body=body, timeout_s=self.forward_timeout_s
        )
        relayed = {name: answer.headers[name] for name in _RELAYED_RESPONSE_HEADERS if name in answer.headers}
        return Response(answer.body, status_code=answer.status, headers=relayed)

    async def find_elsewhere(self, request: Request, not_found: str, body: bytes = b"") -> Response:
        """The answer of the worker that has what ``request`` names (an approval), asking all others.

        Each other worker answers the request as its own (a request from a peer is never passed on
        again); the first answer that is not 404 is relayed. All 404: 404. None found but a worker
        did not answer: 503, since the approval may be the one it keeps.
        """
        answers = await self.forward_to_others(request, body)
        for answer in answers.values():
            if isinstance(answer, Response) and answer.status_code != 404:
                return answer
        silent = {index: error for index, error in answers.items() if isinstance(error, PeerError)}
        if silent:
            named = "; ".join(f"worker {index}: {error}" for index, error in silent.items())
            message = f"{not_found} here, and not every worker answered ({named})"
            raise ApiError(503, ErrorCode.WORKER_UNAVAILABLE, message)
        raise ApiError(404, ErrorCode.NOT_FOUND, not_found)

    async def forward_to_others(self, request: Request, body: bytes = b"") -> dict[int, Response | PeerError]:
        """``request`` forwarded to every other worker at once; each answer or its failure."""
        return await self._each_other(lambda index: self.forward(request, index, body))

    async def ask_others(self, method: str, target: str) -> dict[int, PeerAnswer | PeerError]:
        """The same internal request to every other worker, at once; each answer or its failure."""
        headers = {PEER_HEADER: self.plan.peer_token}
        return await self._each_other(
            lambda index: self._clients[index].request(
                method, target, headers=headers, timeout_s=PEER_QUERY_TIMEOUT_S
            )
        )

    async def _each_other(self, ask: Callable[[int], Awaitable[_Answer]]) -> dict[int, _Answer | PeerError]:
        async def one(index: int) -> _Answer | PeerError:
            try:
                return await ask(index)
            except PeerError as error:
                return error

        peers = self.plan.peers()
        answers = await asyncio.gather(*(one(index) for index in peers))
        return dict(zip(peers, answers, strict=True))

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


class PeerApi:
    """The routes only other workers call: this worker's own metrics, and reloading its policies."""

    def __init__(self, service: Service, peers: Peers) -> None:
        self.service = service
        self.peers = peers

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        router.add_api_route("/internal/metrics", self.metrics, methods=["GET"])
        router.add_api_route("/internal/reload", self.reload, methods=["POST"])
        return router

    def _check(self, request: Request) -> None:
        if not self.peers.is_peer(request):
            raise ApiError(404, ErrorCode.NOT_FOUND, "Not Found")  # as for any path the API lacks

    async def metrics(self, request: Request) -> Response:
        self._check(request)
        return Response(self.service.metrics.render(), media_type="text/plain")

    async def reload(self, request: Request) -> Response:
        self._check(request)
        try:
            previous, current = await anyio.to_thread.run_sync(self.service.reload)
        except PolicyLoadError as error:
            raise ApiError(422, error.code, error.message) from None
        return json_response(200, {"previous_revision": previous, "revision": current})
