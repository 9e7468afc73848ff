"""A real HTTP server on 127.0.0.1 replaying recorded host answers to the real clients.

Layout (swh ``requests_mock_datadir`` convention): a GET of ``/<host>/<path>?<query>``
is answered from ``tests/data/hosts/<host>/<path>,<query>.json`` (query sorted;
tried in full, then with only its ``cursor``/``page`` keys, then without),
``.txt`` for other bodies, with an optional ``.meta.json`` sidecar giving
``status`` and ``headers``. ``server.visit = N`` serves the ``_visitN`` variants
where they exist (the newest variant <= N), for recrawls. Recorded absolute URLs
of the hosts are rewritten to the server's URL.

Where no recording exists the server builds answers in the documented shape
from the recorded records: the Hugging Face models list (sorted by
lastModified, ``limit``, ``cursor``, ``expand``, filters, ``Link`` header), file
trees of Hugging Face repos (from their ``siblings``; values the record lacks are
derived from the path), and Replicate version lists (from the listed model).

PUT and POST bodies are logged with their request. A JSON body's ``PageNumber``
and ``Path`` are matched like a query (ModelScope's list calls), Civitai's
``POST /api/v1/model-versions/by-hash`` is answered from the recorded Civitai
models (and ``/api/v1/models/{id}`` from a list page's item), and Range is
answered on the Hub's ``/resolve/`` and on any host's ``/cdn/`` files (where a
recorded 307 sends an Ollama blob).

Faults are injected with :meth:`ReplayServer.fail`, every request is logged in
``server.requests``, and ``server.delay`` slows each answer.

Example:
    >>> with ReplayServer(DATA) as server:  # doctest: +SKIP
    ...     HfApi(endpoint=server.base("huggingface")).model_info("gpt2")
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

DATA = Path(__file__).resolve().parent / "data" / "hosts"
RECORDED_BASES = {  # recorded absolute URL -> host prefix on this server
    "https://huggingface.co": "huggingface",
    "https://api.civitai.com": "civitai",
    "https://civitai.com": "civitai",
    "https://api.replicate.com": "replicate",
}
CURSOR_KEYS = ("cursor", "page", "PageNumber")
LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".h5", ".msgpack", ".onnx", ".pt",
                ".pth", ".ckpt", ".ot", ".tflite", ".model", ".pkl")  # fmt: skip
_VISIT = re.compile(r"_visit\d+$")
ANY = re.compile("")
OPEN_IN_GATED = ("README.md", ".gitattributes")  # served by the Hub to anyone
RESET_HEADER = "X-Replay-Reset"  # internal: the handler cuts the connection

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Request:
    """One request the server received."""

    host: str
    path: str  # without the host prefix, leading "/"
    query: str
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)  # when it arrived
    body: bytes = b""  # what a POST or PUT sent
    method: str = "GET"

    @property
    def params(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True)


@dataclass
class Fault:
    """An injected failure for requests whose ``/host/path?query`` matches."""

    pattern: re.Pattern[str]
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = 1  # None: forever
    truncate: bool = False  # serve the real answer cut in half instead
    reset: bool = False  # promise the whole answer, send half, close the connection


class ReplayServer:
    """Stdlib ThreadingHTTPServer on 127.0.0.1, port chosen by the OS."""

    def __init__(self, root: Path = DATA, *, delay: float = 0.0) -> None:
        self.root = root
        self.delay = delay
        self.visit = 0
        self.rewrite = True
        self.require_auth: set[str] = {"replicate"}
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.bad_tokens: set[str] = set()  # Authorization tokens answered with 401
        self.rate_limited = 0  # answers refused by the enforced budget (429)
        self.refused: list[tuple[str, float]] = []  # (who, when) of each 429
        self._budget: tuple[int, float] | None = None
        self._windows: dict[str, tuple[float, int]] = {}
        self.chaos_counts = {"5xx": 0, "truncated": 0, "reset": 0}
        self._chaos: tuple[random.Random, float, float, float] | None = None
        self._records: tuple[int, dict[str, dict[str, Any]]] | None = None
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            daemon=True,
        )

    def __enter__(self) -> ReplayServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def base(self, host: str) -> str:
        """The base URL a host class is configured with to reach this server."""
        return f"{self.url}/{host}"

    def reset(self) -> None:
        """Forget requests and faults (the visit stays)."""
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self._chaos = None

    def fail(
        self,
        pattern: str,
        status: int = 500,
        *,
        times: int | None = 1,
        headers: dict[str, str] | None = None,
        truncate: bool = False,
        reset: bool = False,
    ) -> None:
        """Answer matching requests with ``status`` (or truncated, or reset).

        ``truncate`` serves half of the real body as a complete answer (JSON that
        does not decode); ``reset`` announces the whole body, sends half of it and
        closes the connection (the client sees a reset mid-body).
        """
        self.faults.append(
            Fault(re.compile(pattern), status, headers or {}, times, truncate, reset)
        )

    def enforce_budget(self, requests: int, seconds: float) -> None:
        """Answer 429 (with ``Retry-After``) past ``requests`` per ``seconds`` a token.

        Each Authorization value (anonymous included) counts in fixed windows of
        ``seconds`` from its first request, as hosts count quotas; file downloads
        (``/resolve/``) count apart from API calls, as the Hub's resolver bucket
        does (https://huggingface.co/docs/hub/rate-limits).
        """
        with self._lock:
            self._budget = (requests, seconds)
            self._windows.clear()

    def _over_budget(self, auth: str) -> float | None:
        """Seconds until the window of ``auth`` ends if it is used up (lock held)."""
        if self._budget is None:
            return None
        limit, seconds = self._budget
        now = time.monotonic()
        start, used = self._windows.get(auth, (now, 0))
        if now - start >= seconds:
            start, used = now, 0
        if used >= limit:
            self.rate_limited += 1
            self.refused.append((auth, now))
            return start + seconds - now
        self._windows[auth] = (start, used + 1)
        return None

    def chaos(
        self,
        *,
        seed: int,
        server_errors: float = 0.0,
        truncations: float = 0.0,
        resets: float = 0.0,
    ) -> None:
        """Fail each request at random: 5xx, truncated body or reset mid-body.

        The draws come from ``random.Random(seed)``, one per request in arrival
        order, so a run is reproducible up to thread scheduling.
        """
        self._chaos = (random.Random(seed), server_errors, truncations, resets)

    def count(self, pattern: str) -> int:
        """How many requests matched ``pattern`` (searched in ``/host/path?query``)."""
        rx = re.compile(pattern)
        return sum(
            1 for r in self.requests if rx.search(f"/{r.host}{r.path}?{r.query}")
        )

    # --- answering ----------------------------------------------------------------

    def answer(
        self,
        host: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes = b"",
        method: str = "GET",
    ) -> Answer:
        with self._lock:
            self.requests.append(Request(host, path, query, headers, body=body,
                                         method=method))  # fmt: skip
            fault = self._take_fault(f"/{host}{path}?{query}") or self._draw_chaos()
            bucket = "resolve" if "/resolve/" in path else "api"
            wait = self._over_budget(f"{headers.get('authorization', '')} {bucket}")
        if wait is not None:
            headers = {"Content-Type": "application/json",
                       "Retry-After": str(max(1, math.ceil(wait)))}  # fmt: skip
            return 429, headers, b'{"error":"rate limit exceeded"}'
        if self.delay:
            time.sleep(self.delay)
        if fault is not None and not (fault.truncate or fault.reset):
            body = json.dumps({"error": f"injected HTTP {fault.status}"}).encode()
            return (
                fault.status,
                {"Content-Type": "application/json", **fault.headers},
                body,
            )
        refused = self._refuse(host, path, headers)
        if refused is not None:
            return refused
        if method == "GET":
            status, out_headers, body = self._route(host, path, query)
        else:
            status, out_headers, body = self._route_body(host, path, body)
        # Range is answered on the Hub's /resolve/ and on any host's /cdn/ files
        # (where a recorded redirect sends a blob, as Ollama's go to R2).
        ranged = "/resolve/" in path or path.startswith("/cdn/")
        if status == 200 and "range" in headers and ranged:
            status, out_headers, body = _ranged(headers["range"], out_headers, body)
        if fault is not None and fault.reset:
            return status, {**out_headers, RESET_HEADER: "1"}, body
        if fault is not None:
            body = body[: max(1, len(body) // 2)]
        return status, out_headers, body

    def _draw_chaos(self) -> Fault | None:
        if self._chaos is None:
            return None
        rng, server_errors, truncations, resets = self._chaos
        draw = rng.random()
        for kind, share, fault in (
            ("5xx", server_errors, Fault(ANY, 503)),
            ("truncated", truncations, Fault(ANY, truncate=True)),
            ("reset", resets, Fault(ANY, reset=True)),
        ):
            if draw < share:
                self.chaos_counts[kind] += 1
                return fault
            draw -= share
        return None

    def _refuse(self, host: str, path: str, headers: dict[str, str]) -> Answer | None:
        """The hosts' answers to a missing, bad or insufficient token, if any."""
        auth = headers.get("authorization", "")
        if auth.removeprefix("Bearer ") in self.bad_tokens:
            return self._bad_token(host)
        if host in self.require_auth and not auth:
            return self._file_answer(
                self.root / host / "unauthenticated.401.json", 401, {}
            )
        if host == "huggingface":
            return self._hf_gate(path, bool(auth))
        return None

    def _bad_token(self, host: str) -> Answer:
        if host == "replicate":
            return self._file_answer(
                self.root / host / "unauthenticated.401.json", 401, {}
            )
        # The Hub's words for a token it does not know (huggingface_hub
        # utils/_http.py hf_raise_for_status compares X-Error-Message with them).
        message = "Invalid credentials in Authorization header"
        if host == "civitai":
            message = "Unauthorized"  # status as Civitai answers; body constructed
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        return 401, headers, json.dumps({"error": message}).encode()

    def _hf_gate(self, path: str, authorized: bool) -> Answer | None:
        """401/403 ``GatedRepo`` for the files of a gated repo, as the Hub answers.

        The Hub serves README.md and .gitattributes of a gated repo to anyone;
        any other ``/resolve/`` of it is refused: 401 without a token, 403 with a
        token whose account was not granted (``X-Error-Code: GatedRepo``, which
        huggingface_hub maps to GatedRepoError).
        """
        repo_id, sep, rest = path.lstrip("/").partition("/resolve/")
        if not sep or rest.split("/", 1)[-1] in OPEN_IN_GATED:
            return None
        record = self.hf_records().get(repo_id)
        if record is None or not record.get("gated"):
            return None
        status = 403 if authorized else 401
        message = (
            f"Access to model {repo_id} is restricted and you are not in the "
            "authorized list."
            if authorized
            else f"Access to model {repo_id} is restricted. You must have access "
            "to it and be authenticated to access it. Please log in."
        )
        headers = {"Content-Type": "application/json", "X-Error-Code": "GatedRepo",
                   "X-Error-Message": message}  # fmt: skip
        return status, headers, json.dumps({"error": message}).encode()

    def _take_fault(self, target: str) -> Fault | None:
        for fault in self.faults:
            if fault.pattern.search(target) and (
                fault.times is None or fault.times > 0
            ):
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None

    def _route(self, host: str, path: str, query: str) -> Answer:
        if host == "huggingface" and path == "/api/models":
            return self._hf_list(query)
        found = self.lookup(host, path, query)
        if found is not None:
            return found
        if (
            host == "huggingface"
            and "/tree/" in path
            and path.startswith("/api/models/")
        ):
            return self._hf_tree(path, query)
        if host == "replicate" and path.endswith("/versions"):
            return self._replicate_versions(path)
        if host == "civitai" and re.fullmatch(r"/api/v1/models/\d+", path):
            return self._civitai_model(path)
        return self._not_found(host, path)

    def _route_body(self, host: str, path: str, body: bytes) -> Answer:
        """POST and PUT: Civitai's by-hash batch; a JSON body's page keys as query."""
        try:
            sent = json.loads(body or b"null")
        except ValueError:
            sent = None
        if host == "civitai" and path == "/api/v1/model-versions/by-hash":
            return self._civitai_by_hash(sent)
        # ModelScope's list calls (PUT) carry their page in the body.
        keys = ("PageNumber", "Path")
        query = urlencode(
            [(k, sent[k]) for k in keys if isinstance(sent, dict) and k in sent]
        )
        found = self.lookup(host, path, query)
        return found if found is not None else self._not_found(host, path)

    def lookup(self, host: str, path: str, query: str) -> Answer | None:
        """Answer from recorded files, or None when nothing is recorded."""
        base = self.root / host / path.strip("/")
        params = sorted(parse_qsl(query, keep_blank_values=True))
        cursors = [(k, v) for k, v in params if k in CURSOR_KEYS]
        names = []
        for chosen in (params, cursors, []):
            text = "&".join(f"{k}={v}".replace("/", "%2F") for k, v in chosen)
            names.append(f"{base.name},{text}" if text else base.name)
        for name in dict.fromkeys(names):
            found = self._variant(base.parent, name)
            if found is not None:
                return found
        return None

    def _variant(self, folder: Path, name: str) -> Answer | None:
        for visit in range(self.visit, -1, -1):
            stem = f"{name}_visit{visit}" if visit else name
            meta_path = folder / f"{stem}.meta.json"
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
            for suffix in (".json", ".txt", ""):  # "": a raw file under its own name
                if (folder / f"{stem}{suffix}").is_file():
                    status = meta["status"] if meta else 200
                    headers = dict(meta.get("headers", {})) if meta else {}
                    return self._file_answer(
                        folder / f"{stem}{suffix}", status, headers
                    )
            if meta is not None:  # a status alone (a redirect, a 404)
                headers = dict(meta.get("headers", {}))
                location = headers.get("Location", "")
                if location.startswith("/"):
                    host = folder.relative_to(self.root).parts[0]
                    headers["Location"] = f"/{host}{location}"
                return meta["status"], headers, b""
        return None

    def _file_answer(self, path: Path, status: int, headers: dict[str, str]) -> Answer:
        body = path.read_bytes()
        host = path.relative_to(self.root).parts[0]
        if self.rewrite:
            for recorded, prefix in RECORDED_BASES.items():  # this host's own URLs only
                if prefix == host:
                    body = body.replace(recorded.encode(), self.base(prefix).encode())
        location = headers.get("Location")
        if location and location.startswith("/"):
            headers["Location"] = f"/{host}{location}"
        kind = (
            "application/json"
            if path.suffix == ".json"
            else "text/plain; charset=utf-8"
        )
        headers.setdefault("Content-Type", kind)
        return status, headers, body

    def _not_found(self, host: str, path: str) -> Answer:
        headers = {"Content-Type": "application/json"}
        if host == "huggingface" and path.startswith("/api/models/"):
            headers["X-Error-Code"] = "RepoNotFound"
            return 404, headers, b'{"error":"Repository not found"}'
        if host == "civitai":
            return 404, headers, b'{"error":"Model not found"}'
        if host == "ollama":  # the OCI distribution error shape
            body = {"errors": [{"code": "MANIFEST_UNKNOWN",
                                "message": "manifest unknown"}]}  # fmt: skip
            return 404, headers, json.dumps(body).encode()
        if host == "modelscope":
            body = {"Code": 10010205001, "Message": "model not found",
                    "Success": False}  # fmt: skip
            return 404, headers, json.dumps(body).encode()
        return 404, headers, b'{"detail":"Not found.","status":404}'

    # --- Hugging Face answers built from the recorded model records ------------------

    def hf_records(self) -> dict[str, dict[str, Any]]:
        """The model records served at this visit, by repo id (read once a visit)."""
        cached = self._records
        if cached is not None and cached[0] == self.visit:
            return cached[1]
        records = self._read_hf_records()
        self._records = (self.visit, records)
        return records

    def _read_hf_records(self) -> dict[str, dict[str, Any]]:
        folder = self.root / "huggingface" / "api" / "models"
        stems = {
            str(p.relative_to(folder)).removesuffix(".json").removesuffix(".meta")
            for p in folder.rglob("*.json")
            if "/tree/" not in str(p)
        }
        records = {}
        for stem in sorted({_VISIT.sub("", s) for s in stems}):
            found = self.lookup("huggingface", f"/api/models/{stem}", "")
            if found is None or found[0] != 200:
                continue
            record = json.loads(found[2])
            if isinstance(record, dict) and "id" in record:
                records[record["id"]] = record
        return records

    def _hf_list(self, query: str) -> Answer:
        params = parse_qsl(query, keep_blank_values=True)
        get = dict(params)
        records = list(self.hf_records().values())
        if get.get("author"):
            records = [r for r in records if r.get("author") == get["author"]]
        if get.get("search"):
            records = [r for r in records if get["search"].lower() in r["id"].lower()]
        if get.get("filter"):
            records = [r for r in records if get["filter"] in r.get("tags", [])]
        records.sort(key=lambda r: (r.get("lastModified", ""), r["id"]), reverse=True)
        expand = [v for k, v in params if k in ("expand", "expand[]")]
        keys = {"_id", "id", *expand} if expand else {
            "_id", "id", "likes", "downloads", "tags", "pipeline_tag", "library_name",
            "createdAt", "modelId", "private"}  # fmt: skip
        items = [{k: v for k, v in r.items() if k in keys} for r in records]
        return self._hf_paged(
            "/api/models", params, items, int(get.get("limit") or 1000)
        )

    def _hf_paged(
        self, path: str, params: list[tuple[str, str]], items: list[Any], size: int
    ) -> Answer:
        """One page of ``items`` with a Link header to the next (HF's pagination)."""
        cursor = dict(params).get("cursor")
        start = int(base64.urlsafe_b64decode(cursor).decode()) if cursor else 0
        page = items[start : start + size]
        headers = {"Content-Type": "application/json"}
        if start + size < len(items):
            nxt = base64.urlsafe_b64encode(str(start + size).encode()).decode()
            rest = [(k, v) for k, v in params if k != "cursor"] + [("cursor", nxt)]
            headers["Link"] = (
                f'<{self.base("huggingface")}{path}?{urlencode(rest)}>; rel="next"'
            )
        return 200, headers, json.dumps(page).encode()

    def hf_tree_entries(
        self, record: dict[str, Any], *, expand: bool
    ) -> list[dict[str, Any]]:
        """A repo's tree in the documented shape, from its record's ``siblings``."""
        entries: dict[str, dict[str, Any]] = {}
        for sibling in record.get("siblings") or []:
            path = sibling["rfilename"]
            for depth in range(path.count("/")):
                folder = path.rsplit("/", path.count("/") - depth)[0]
                entries.setdefault(
                    folder,
                    {
                        "type": "directory",
                        "size": 0,
                        "path": folder,
                        "oid": _digest("tree", folder, 40),
                    },
                )
            entries[path] = self._hf_file(record, sibling, expand=expand)
        return sorted(entries.values(), key=lambda e: e["path"])

    def _hf_file(
        self, record: dict[str, Any], sibling: dict[str, Any], *, expand: bool
    ) -> dict[str, Any]:
        path = sibling["rfilename"]
        entry: dict[str, Any] = {
            "type": "file",
            "oid": sibling.get("blobId") or _digest("blob", path, 40),
        }
        lfs = sibling.get("lfs")
        derive = "blobId" not in sibling and path.endswith(LFS_SUFFIXES)
        if lfs is None and derive:  # derived: the record holds no oid for it
            oid = _digest("lfs", f"{record['id']}/{path}", 64)
            lfs = {"sha256": oid, "size": int(oid[:6], 16) + 1024, "pointerSize": 134}
        entry["size"] = sibling.get("size") or (lfs["size"] if lfs else 10 * len(path))
        if lfs is not None:
            entry["lfs"] = {
                "oid": lfs["sha256"],
                "size": lfs["size"],
                "pointerSize": lfs["pointerSize"],
            }
        entry["path"] = path
        if expand:
            entry["lastCommit"] = {
                "id": record["sha"],
                "title": "Upload",
                "date": record.get("lastModified"),
            }
            pickle = path.endswith((".bin", ".pkl", ".pt", ".pth", ".ckpt"))
            entry["securityFileStatus"] = {
                "status": "safe", "avScan": {"virusFound": False, "virusNames": None},
                "pickleImportScan": {"highestSafetyLevel": "innocuous", "imports": []}
                if pickle else None}  # fmt: skip
        return entry

    def _hf_tree(self, path: str, query: str) -> Answer:
        repo_id, _, rest = path[len("/api/models/") :].partition("/tree/")
        revision = rest.split("/")[0]
        record = self.hf_records().get(repo_id)
        if record is None:
            return self._not_found("huggingface", path)
        if revision not in (record.get("sha"), "main"):
            body = json.dumps({"error": f"Invalid rev id: {revision}"}).encode()
            return 404, {"Content-Type": "application/json",
                         "X-Error-Code": "RevisionNotFound"}, body  # fmt: skip
        params = parse_qsl(query, keep_blank_values=True)
        expand = dict(params).get("expand", "").lower() == "true"
        items = self.hf_tree_entries(record, expand=expand)
        return self._hf_paged(path, params, items, 50 if expand else 1000)

    # --- Replicate --------------------------------------------------------------------

    def replicate_models(self) -> dict[str, dict[str, Any]]:
        """The models listed at this visit, by ``owner/name``."""
        folder = self.root / "replicate" / "v1"
        out: dict[str, dict[str, Any]] = {}
        stems = {
            _VISIT.sub("", p.name.removesuffix(".json"))
            for p in folder.glob("models*.json")
            if not p.name.endswith(".meta.json")
        }
        for stem in sorted(stems):
            found = self._variant(folder, stem)
            if found is not None and found[0] == 200:
                for item in json.loads(found[2]).get("results", []):
                    out[f"{item['owner']}/{item['name']}"] = item
        return out

    def _replicate_versions(self, path: str) -> Answer:
        model_id = path[len("/v1/models/") :].removesuffix("/versions")
        model = self.replicate_models().get(model_id)
        if model is None:
            return self._not_found("replicate", path)
        latest = model.get("latest_version")
        body = {"next": None, "previous": None, "results": [latest] if latest else []}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    # --- Civitai answers built from the recorded models -----------------------------

    def civitai_models(self) -> dict[int, dict[str, Any]]:
        """The models of every recorded list page and model answer at this visit."""
        folder = self.root / "civitai" / "api" / "v1"
        out: dict[int, dict[str, Any]] = {}
        stems = {
            str(p.relative_to(folder)).removesuffix(".json")
            for p in folder.rglob("*.json")
            if not p.name.endswith(".meta.json") and "by-hash" not in str(p)
        }
        for stem in sorted({_VISIT.sub("", s) for s in stems}):
            target = folder / stem
            found = self._variant(target.parent, target.name)
            if found is None or found[0] != 200:
                continue
            data = json.loads(found[2])
            items = data.get("items") if isinstance(data, dict) else None
            for item in items if isinstance(items, list) else [data]:
                if isinstance(item, dict) and isinstance(item.get("id"), int):
                    out.setdefault(item["id"], item)
        return out

    def _civitai_model(self, path: str) -> Answer:
        """``/api/v1/models/{id}`` of a listed model (the list item is the record)."""
        model = self.civitai_models().get(int(path.rsplit("/", 1)[1]))
        if model is None:
            return self._not_found("civitai", path)
        return self._json_answer(model)

    def _civitai_by_hash(self, sent: Any) -> Answer:
        """The versions holding any of the SHA256s posted, in the by-hash shape.

        civitai/civitai src/pages/api/v1/model-versions/by-hash/index.ts: a JSON
        list of at most 100 SHA256 strings; the answer is a list of versions
        shaped like GET /api/v1/model-versions/{id} (``modelId``, ``model``).
        """
        if (
            not isinstance(sent, list)
            or len(sent) > 100
            or not all(isinstance(h, str) and len(h) == 64 for h in sent)
        ):
            body = {"error": "Request must include an array of SHA256 Hashes"}
            return 400, {"Content-Type": "application/json"}, json.dumps(body).encode()
        wanted = {h.upper() for h in sent}
        found = []
        for model in self.civitai_models().values():
            for version in model.get("modelVersions") or []:
                shas = {(f.get("hashes") or {}).get("SHA256", "").upper()
                        for f in version.get("files") or []}  # fmt: skip
                if shas & wanted:
                    keys = ("name", "type", "nsfw", "poi", "mode")
                    summary = {k: model.get(k) for k in keys}
                    found.append({**version, "modelId": model["id"], "model": summary})
        return self._json_answer(found)

    def _json_answer(self, data: Any) -> Answer:
        body = json.dumps(data).encode()
        if self.rewrite:
            for recorded in ("https://civitai.com", "https://api.civitai.com"):
                body = body.replace(recorded.encode(), self.base("civitai").encode())
        return 200, {"Content-Type": "application/json"}, body


def _ranged(value: str, headers: dict[str, str], body: bytes) -> Answer:
    """A 206 answer with the bytes of one ``Range: bytes=A-B`` (as file hosts give)."""
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", value.strip())
    if match is None or int(match.group(1)) >= len(body):
        return 416, {"Content-Range": f"bytes */{len(body)}"}, b""
    start = int(match.group(1))
    end = min(int(match.group(2) or len(body) - 1), len(body) - 1)
    out = {
        **headers,
        "Content-Range": f"bytes {start}-{end}/{len(body)}",
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
    }
    return 206, out, body[start : end + 1]


def _digest(kind: str, text: str, length: int) -> str:
    """A stable stand-in for a value no recording holds (marked derived)."""
    return hashlib.sha256(f"modelscan-tests {kind} {text}".encode()).hexdigest()[
        :length
    ]


def _handler(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out without a 40 ms stall

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parts = urlsplit(self.path)
            host, _, rest = parts.path.lstrip("/").partition("/")
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._reply(*server.answer(host, "/" + rest, parts.query, headers))

        def _reply(self, status: int, out_headers: dict[str, str], body: bytes) -> None:
            reset = out_headers.pop(RESET_HEADER, None) is not None
            self.send_response(status)
            for key, value in out_headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if reset:  # half the promised body, then the connection goes away
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def _with_body(self, method: str) -> None:
            parts = urlsplit(self.path)
            host, _, rest = parts.path.lstrip("/").partition("/")
            headers = {k.lower(): v for k, v in self.headers.items()}
            length = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
            sent = self.rfile.read(length) if length else b""
            self._reply(
                *server.answer(host, "/" + rest, parts.query, headers, sent, method)
            )

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self._with_body("POST")

        def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
            self._with_body("PUT")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler
