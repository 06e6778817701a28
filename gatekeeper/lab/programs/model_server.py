#!/usr/bin/env python3
"""A stand-in model server for the gatekeeper lab: ``deploy_api_server_<model>.py --port M``.

It "loads" the weight files of ``../local_model_weights/`` (or ``--weights DIR``): every
``.safetensors`` file must have a valid header (8-byte little-endian length, a JSON header whose
tensors' ``data_offsets`` fit in the file). Without at least one valid weight file it refuses to start,
as a real model server would. It then answers on 127.0.0.1 only:

- ``GET /health``: ``{"status": "ok", "role": "model_server", "model", "home", "weights_dir", ...}``
- ``POST /v1/completions`` and ``/v1/chat/completions``: a fixed completion.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SCRIPT_PREFIX = "deploy_api_server_"
FIXED_COMPLETION = "I am a small stand-in model. I can only say this one sentence."
MAX_HEADER_BYTES = 1 << 20


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file; ValueError when the file is not valid safetensors."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise ValueError(f"{path.name}: shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES or 8 + length > size:
            raise ValueError(f"{path.name}: header length {length} does not fit the file")
        header = json.loads(handle.read(length).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError(f"{path.name}: header is not a JSON object")
    data_size = size - 8 - length
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        start, end = tensor["data_offsets"]
        if not 0 <= start <= end <= data_size:
            raise ValueError(f"{path.name}: tensor {name} lies outside the data section")
    return header


def load_weights(directory: Path) -> dict[str, int]:
    """Validate every weight file; returns tensor counts by file name, SystemExit when none is valid."""
    files = sorted(directory.glob("*.safetensors")) if directory.is_dir() else []
    if not files:
        raise SystemExit(f"model server: no .safetensors weights in {directory}")
    loaded = {}
    for path in files:
        try:
            header = read_safetensors_header(path)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SystemExit(f"model server: cannot load {path}: {error}") from error
        loaded[path.name] = sum(1 for name in header if name != "__metadata__")
    return loaded


def model_name(script: Path, weights: Path) -> str:
    if script.stem.startswith(SCRIPT_PREFIX):
        return script.stem[len(SCRIPT_PREFIX) :]
    config = weights / "config.json"
    try:
        return str(json.loads(config.read_text(encoding="utf-8")).get("model_name", "unknown"))
    except (OSError, ValueError):
        return "unknown"


def make_handler(status: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/health":
                self._reply(200, status)
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(min(length, 1 << 20))
            if self.path in ("/v1/completions", "/v1/chat/completions"):
                message = {"role": "assistant", "content": FIXED_COMPLETION}
                choice = {"index": 0, "text": FIXED_COMPLETION, "message": message}
                self._reply(200, {"model": status["model"], "choices": [choice]})
            else:
                self._reply(404, {"error": "not found"})

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Stand-in model server (gatekeeper lab).")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", help="ignored: the lab listens on loopback only")
    parser.add_argument("--weights", type=Path, default=None)
    args = parser.parse_args(argv)
    script = Path(__file__).resolve()
    weights = (args.weights or script.parent.parent / "local_model_weights").resolve()
    loaded = load_weights(weights)
    status = {
        "status": "ok",
        "role": "model_server",
        "model": model_name(script, weights),
        "pid": os.getpid(),
        "port": args.port,
        "home": str(script.parent.parent),
        "weights_dir": str(weights),
        "weight_files": loaded,
    }
    try:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(status))
    except OSError as error:
        print(f"model server: cannot listen on 127.0.0.1:{args.port}: {error}", file=sys.stderr)
        return 1
    print(f"model server {status['model']} ready on 127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
