"""A Hub-like file server on 127.0.0.1 for remote fingerprint tests: two origins.

The *hub* origin answers ``/<owner>/<name>/resolve/<revision>/<path>`` (and
Civitai's ``/api/download/models/<version>``) with a 302 to the *cdn* origin,
another port, carrying an expiring signature in the query, plus the Hub's
``X-Linked-Size`` and ``X-Linked-Etag`` headers. It also answers Civitai's
``/api/v1/model-versions/<id>`` with JSON built from the registered files. The
cdn origin serves Range GETs (206 with Content-Range) of the registered file
when the signature is valid, 403 when it expired. ``/files/<name>`` on the hub
origin serves Range GETs directly, without a redirect.

Every request is logged with what the server sent (``server.log``), so tests
assert the request and byte budgets on the server's side. Faults:
``ignore_range`` (200 and the whole body, written in 64 KiB chunks until the
client hangs up), ``expire()`` (every signature issued so far turns invalid),
``fail(status, times)`` and ``hostile`` answers (``truncate``, ``extra``,
``wrong_range``).

Example:
    >>> with RangeServer() as server:  # doctest: +SKIP
    ...     server.add("o/n", "model.safetensors", path)
    ...     url = server.resolve_url("o/n", "model.safetensors")
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class Served:
    """One request and what the server sent back."""

    origin: str  # "hub" or "cdn"
    path: str
    range: str | None
    status: int
    sent: int  # body bytes written to the socket
    auth: bool  # an Authorization header arrived


@dataclass
class HostedFile:
    repo: str
    path: str
    local: Path
    sha256: str
    size: int
    version_id: int
    file_id: int
    extra: dict[str, Any] = field(default_factory=dict)


class RangeServer:
    """Two stdlib ThreadingHTTPServers (hub, cdn) sharing one state."""

    def __init__(self, *, ttl: float = 3600.0) -> None:
        self.ttl = ttl
        self.files: dict[str, HostedFile] = {}  # key "<repo>/<path>"
        self.log: list[Served] = []
        self.ignore_range = False
        self.hostile: str | None = None  # truncate | extra | wrong_range
        self.generation = 0
        self.active = 0  # answers being written
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "hub"))
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "cdn"))
        for httpd in (self._hub, self._cdn):
            httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._hub.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self._cdn.server_address[1]}"
        self._threads = [
            threading.Thread(
                target=h.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            )
            for h in (self._hub, self._cdn)
        ]

    def __enter__(self) -> RangeServer:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for httpd in (self._hub, self._cdn):
            httpd.shutdown()
            httpd.server_close()

    # --- set-up -------------------------------------------------------------------

    def add(
        self,
        repo: str,
        path: str,
        local: Path,
        *,
        version_id: int = 0,
        file_id: int = 0,
    ) -> HostedFile:
        """Host ``local`` as ``<repo>/<path>`` (and as Civitai version/file ids)."""
        data = local.read_bytes()
        hosted = HostedFile(
            repo,
            path,
            local,
            hashlib.sha256(data).hexdigest(),
            len(data),
            version_id,
            file_id,
        )
        self.files[f"{repo}/{path}"] = hosted
        return hosted

    def resolve_url(self, repo: str, path: str, revision: str = "main") -> str:
        return f"{self.url}/{repo}/resolve/{revision}/{path}"

    def direct_url(self, repo: str, path: str) -> str:
        return f"{self.url}/files/{repo}/{path}"

    def expire(self) -> None:
        """Invalidate every signature issued so far (the next CDN GET gets 403)."""
        self.generation += 1

    def fail(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests (either origin) with ``status``."""
        self._failures.extend([status] * times)

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until no answer is still being written (so the log is complete)."""
        deadline = time.monotonic() + timeout
        while self.active and time.monotonic() < deadline:
            time.sleep(0.005)

    def reset(self) -> None:
        """Forget the log, once the answers still being written are done."""
        self.settle()
        with self._lock:
            self.log.clear()

    # --- accounting -----------------------------------------------------------------

    def count(self, origin: str | None = None) -> int:
        self.settle()
        return sum(1 for s in self.log if origin in (None, s.origin))

    def bytes_sent(self) -> int:
        self.settle()
        return sum(s.sent for s in self.log)

    # --- answering --------------------------------------------------------------------

    def _sign(self, key: str, expires: int) -> str:
        text = f"{key}|{expires}|{self.generation}".encode()
        return hashlib.sha256(b"modelscan-tests" + text).hexdigest()[:24]

    def take_failure(self) -> int | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def record(self, served: Served) -> None:
        with self._lock:
            self.log.append(served)

    def hub_answer(self, path: str) -> tuple[int, dict[str, str], bytes | HostedFile]:
        """Status, headers and body (or the file to serve with Range) for the hub."""
        parts = path.strip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            key = "/".join(parts[:2] + parts[4:])
            return self._redirect(self.files.get(key))
        if parts[:3] == ["api", "download", "models"] and len(parts) == 4:
            found = [f for f in self.files.values() if str(f.version_id) == parts[3]]
            return self._redirect(found[0] if found else None, status=307)
        if parts[:3] == ["api", "v1", "model-versions"] and len(parts) == 4:
            return self._civitai_version(parts[3])
        if parts[0] == "files":
            hosted = self.files.get("/".join(parts[1:]))
            if hosted is not None:
                return 200, {}, hosted
        return 404, {"Content-Type": "text/plain"}, b"Entry not found"

    def _redirect(
        self, hosted: HostedFile | None, status: int = 302
    ) -> tuple[int, dict[str, str], bytes]:
        if hosted is None:
            return 404, {"Content-Type": "text/plain"}, b"Entry not found"
        key = f"{hosted.repo}/{hosted.path}"
        expires = int(time.time() + self.ttl)
        location = (
            f"{self.cdn_url}/blobs/{hosted.sha256}?key={key}"
            f"&Expires={expires}&Signature={self._sign(key, expires)}"
        )
        headers = {
            "Location": location,
            "X-Linked-Size": str(hosted.size),
            "X-Linked-Etag": f'"{hosted.sha256}"',
            "Content-Type": "text/plain",
        }
        return status, headers, b"Found. Redirecting"

    def _civitai_version(self, version: str) -> tuple[int, dict[str, str], bytes]:
        files = [f for f in self.files.values() if str(f.version_id) == version]
        if not files:
            return 404, {"Content-Type": "application/json"}, b'{"error":"No version"}'
        body = {
            "id": int(version),
            "files": [
                {
                    "id": f.file_id,
                    "name": Path(f.path).name,
                    "sizeKB": f.size / 1024,
                    "primary": i == 0,
                    "hashes": {"SHA256": f.sha256.upper(), "AutoV2": f.sha256[:10]},
                    "downloadUrl": f"https://civitai.com/api/download/models/{version}"
                    + (f"?type=Model&fileId={f.file_id}" if i else ""),
                }
                for i, f in enumerate(files)
            ],
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def cdn_file(self, path: str, query: str) -> tuple[int, HostedFile | None]:
        """The file a signed CDN URL names, or 403 (bad or expired signature)."""
        q = {k: v[0] for k, v in parse_qs(query).items()}
        key, expires = q.get("key", ""), q.get("Expires", "0")
        hosted = self.files.get(key)
        if hosted is None or not path.endswith(hosted.sha256):
            return 404, None
        if not expires.isdigit() or int(expires) < time.time():
            return 403, None
        if q.get("Signature") != self._sign(key, int(expires)):
            return 403, None
        return 200, hosted


def _handler(server: RangeServer, origin: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            with server._lock:
                server.active += 1
            try:
                self._get()
            finally:
                with server._lock:
                    server.active -= 1

        def _get(self) -> None:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            rng = self.headers.get("Range")
            auth = "Authorization" in self.headers
            failure = server.take_failure()
            if failure is not None:
                self._send_bytes(failure, {}, b"injected failure", path, rng, auth)
                return
            if origin == "hub":
                status, headers, body = server.hub_answer(path)
                if isinstance(body, HostedFile):
                    self._send_file(body, path, rng, auth)
                else:
                    self._send_bytes(status, headers, body, path, rng, auth)
                return
            status, hosted = server.cdn_file(path, parts.query)
            if hosted is None:
                self._send_bytes(status, {}, b"AccessDenied", path, rng, auth)
            else:
                self._send_file(hosted, path, rng, auth)

        def _send_bytes(
            self,
            status: int,
            headers: dict[str, str],
            body: bytes,
            path: str,
            rng: str | None,
            auth: bool,
        ) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            server.record(Served(origin, path, rng, status, len(body), auth))

        def _send_file(
            self, hosted: HostedFile, path: str, rng: str | None, auth: bool
        ) -> None:
            match = _RANGE.match(rng or "")
            if server.ignore_range or match is None:
                self._stream(200, {}, hosted, 0, hosted.size, path, rng, auth)
                return
            start = int(match.group(1))
            end = min(int(match.group(2) or hosted.size - 1), hosted.size - 1) + 1
            if start >= hosted.size:
                self._send_bytes(416, {}, b"", path, rng, auth)
                return
            shown = (start, end)
            if server.hostile == "wrong_range":
                shown = (start + 1, end)
            headers = {
                "Content-Range": f"bytes {shown[0]}-{shown[1] - 1}/{hosted.size}"
            }
            self._stream(206, headers, hosted, start, end, path, rng, auth)

        def _stream(
            self,
            status: int,
            headers: dict[str, str],
            hosted: HostedFile,
            start: int,
            end: int,
            path: str,
            rng: str | None,
            auth: bool,
        ) -> None:
            length = end - start
            stop = end
            if server.hostile == "truncate" and status == 206:
                stop = start + length // 2
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header(
                "Accept-Ranges", "none" if server.ignore_range else "bytes"
            )
            extra = 16 if server.hostile == "extra" and status == 206 else 0
            self.send_header("Content-Length", str(length + extra))
            self.end_headers()
            sent = 0
            try:
                with hosted.local.open("rb") as f:
                    pos = start
                    while pos < stop:
                        chunk = os.pread(f.fileno(), min(CHUNK, stop - pos), pos)
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        pos += len(chunk)
                    if extra:  # more than the range asked for
                        self.wfile.write(b"\0" * extra)
                        sent += extra
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up: what was sent is counted
            finally:
                server.record(Served(origin, path, rng, status, sent, auth))
            if stop < end:
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


def minilm_conversions(minilm: Path, folder: Path) -> dict[str, Path]:
    """The tests' own conversions of the real MiniLM weights, by the real libraries.

    A torch zip checkpoint (``torch.save``), a legacy torch file
    (``_use_new_zipfile_serialization=False``), a float16 safetensors cast, and
    GGUF F32 and Q8_0 conversions written by llama.cpp's ``gguf`` package (1-D
    tensors stay F32 in Q8_0, as llama.cpp keeps norms).
    """
    import torch
    from safetensors.torch import load_file, save_file

    weights = load_file(str(minilm))
    out = {
        "minilm_torch_zip": folder / "pytorch_model.bin",
        "minilm_torch_legacy": folder / "legacy_model.bin",
        "minilm_f16": folder / "model.fp16.safetensors",
        "minilm_gguf_f32": folder / "minilm-f32.gguf",
        "minilm_gguf_q8_0": folder / "minilm-q8_0.gguf",
    }
    if not out["minilm_gguf_q8_0"].exists():
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(weights, out["minilm_torch_zip"])
        torch.save(
            weights, out["minilm_torch_legacy"], _use_new_zipfile_serialization=False
        )
        save_file({k: v.half() for k, v in weights.items()}, str(out["minilm_f16"]))
        arrays = {k: v.numpy() for k, v in weights.items()}
        write_gguf(out["minilm_gguf_f32"], arrays, quantized=False)
        write_gguf(out["minilm_gguf_q8_0"], arrays, quantized=True)
    return out


def minilm_derivatives(minilm: Path, folder: Path) -> dict[str, Path]:
    """A noisy fine-tune and a shuffled (unrelated) copy of the MiniLM weights."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(minilm))
    rng = np.random.default_rng(42)
    noisy, shuffled = {}, {}
    for name, v in weights.items():
        if v.dtype.kind == "f" and v.ndim >= 2:
            scale = 0.05 * float(v.std())
            noisy[name] = (v + scale * rng.standard_normal(v.shape)).astype(v.dtype)
            shuffled[name] = rng.permutation(v.ravel()).reshape(v.shape)
        else:
            noisy[name] = shuffled[name] = v
    out = {
        "minilm_noisy": folder / "noisy.safetensors",
        "minilm_shuffled": folder / "shuffled.safetensors",
    }
    save_file(noisy, str(out["minilm_noisy"]))
    save_file(shuffled, str(out["minilm_shuffled"]))
    return out


def write_gguf(path: Path, arrays: dict[str, Any], *, quantized: bool) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), "bert")
    writer.add_name("all-MiniLM-L6-v2 (test conversion)")
    for name, array in arrays.items():
        if quantized and array.ndim >= 2:
            q = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(name, gguf.quants.quantize(array, q), raw_dtype=q)
        else:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
