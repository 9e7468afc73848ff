"""Benchmark: full and incremental crawls of a synthetic host served on loopback.

A server process answers, instantly and in the documented shapes, for 50,000
Hugging Face repos (models list sorted by lastModified with Link pages, file
trees of four files) and 20,000 Civitai models (cursor pages of 100, one or two
versions with their hashes). This process runs the real crawler (HttpClient,
huggingface_hub, the crawl loop) into a real index and prints:

- requests per repo of a full Hugging Face crawl,
- requests of an incremental recrawl after 1% of the repos changed (target:
  list pages plus one tree request per changed repo, nothing per unchanged one),
- ingest rate in repos/s (target >= 500 on SQLite), for both hosts,
- peak RSS of the crawling process.

    python bench/crawl.py [--scale 0.1] [--db sqlite:///tmp/x.sqlite] [--workers 8]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

HF_REPOS = 50_000
CIVITAI_MODELS = 20_000
HF_PAGE = 1000
CIVITAI_PAGE = 100


def _hex(*parts: object, n: int = 64) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:n]


class Synthetic:
    """The data: deterministic from the repo number and its generation."""

    def __init__(self, hf: int, civitai: int) -> None:
        self.hf, self.civitai = hf, civitai
        self.changed: set[int] = set()  # repos with a new commit
        self.counts: dict[str, int] = {}

    def repo(self, i: int) -> dict[str, Any]:
        """One entry of the models list (newer for a changed repo)."""
        gen = 2 if i in self.changed else 1
        month = 1 + (i * 12) // max(self.hf, 1)
        modified = f"2024-{month:02d}-{1 + i % 28:02d}T00:00:{i % 60:02d}.000Z"
        parent = f"org0/model-{i % 7}"
        return {
            "_id": _hex("id", i, n=24),
            "id": f"org{i % 997}/model-{i}",
            "author": f"org{i % 997}",
            "sha": _hex("sha", i, gen, n=40),
            "lastModified": modified if gen == 1 else "2025-06-01T00:00:00.000Z",
            "private": False,
            "gated": False,
            "disabled": False,
            "pipeline_tag": "text-generation",
            "library_name": "transformers",
            "downloads": i,
            "likes": i % 50,
            "createdAt": "2023-01-01T00:00:00.000Z",
            "tags": ["transformers", f"base_model:finetune:{parent}"],
            "cardData": {"license": "mit", "base_model": parent},
        }

    def hf_list(self, params: dict[str, str]) -> tuple[list[Any], int | None]:
        """One page of the list, newest first, and the offset of the next."""
        rest = (i for i in range(self.hf - 1, -1, -1) if i not in self.changed)
        order = sorted(self.changed) + list(rest)
        cursor = params.get("cursor")
        start = int(base64.urlsafe_b64decode(cursor)) if cursor else 0
        size = int(params.get("limit", HF_PAGE))
        page = [self.repo(i) for i in order[start : start + size]]
        return page, (start + size if start + size < self.hf else None)

    def hf_tree(self, repo_id: str) -> list[dict[str, Any]]:
        """A repo's tree: three small files and one LFS safetensors file."""
        i = int(repo_id.rsplit("-", 1)[1])
        gen = 2 if i in self.changed else 1
        files = [
            (".gitattributes", 1519, None),
            ("README.md", 3000 + i % 100, None),
            ("config.json", 600, None),
            ("model.safetensors", 500_000_000 + i, _hex("lfs", i, gen)),
        ]
        out = []
        for path, size, lfs in files:
            oid = _hex("oid", i, path, n=40)
            entry: dict[str, Any] = {"type": "file", "oid": oid, "size": size}
            entry["path"] = path
            if lfs:
                entry["lfs"] = {"oid": lfs, "size": size, "pointerSize": 135}
                entry["securityFileStatus"] = {
                    "status": "safe",
                    "avScan": None,
                    "pickleImportScan": None,
                }
            out.append(entry)
        return out

    def civitai_page(self, cursor: int) -> dict[str, Any]:
        """One cursor page of 100 models."""
        ids = range(cursor, min(cursor + CIVITAI_PAGE, self.civitai))
        nxt = cursor + CIVITAI_PAGE if cursor + CIVITAI_PAGE < self.civitai else None
        metadata = {"nextCursor": str(nxt)} if nxt else {}
        return {"items": [self.civitai_model(i) for i in ids], "metadata": metadata}

    def civitai_model(self, i: int) -> dict[str, Any]:
        """A model with one or two versions of one file each."""
        versions = []
        for v in range(1 + i % 2):
            sha = _hex("civ", i, v).upper()
            hashes = {
                "SHA256": sha,
                "AutoV2": sha[:10],
                "AutoV1": sha[-8:],
                "CRC32": sha[8:16],
                "BLAKE3": _hex("b3", i, v).upper(),
            }
            file = {
                "id": i * 10 + v,
                "name": f"m{i}-{v}.safetensors",
                "sizeKB": 2_000_000.5,
                "type": "Model",
                "pickleScanResult": "Success",
                "virusScanResult": "Success",
                "hashes": hashes,
                "downloadUrl": f"https://civitai.com/api/download/models/{i}",
            }
            versions.append(
                {
                    "id": i * 10 + v,
                    "name": f"v{v}",
                    "baseModel": "SD 1.5",
                    "publishedAt": "2024-05-01T00:00:00.000",
                    "files": [file],
                }
            )
        return {
            "id": i,
            "name": f"Model {i}",
            "type": "Checkpoint",
            "creator": {"username": f"user{i % 3000}"},
            "stats": {"downloadCount": i, "thumbsUpCount": i % 40},
            "modelVersions": versions,
        }


def _serve(data: Synthetic, port_out: Any) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            params = dict(parse_qsl(parts.query))
            body, headers = self._route(parts.path, params)
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _route(
            self, path: str, params: dict[str, str]
        ) -> tuple[Any, dict[str, str]]:
            kind = "other"
            headers: dict[str, str] = {}
            body: Any = {}
            if path == "/hf/api/models":
                kind = "hf-list"
                body, nxt = data.hf_list(params)
                if nxt is not None:
                    token = base64.urlsafe_b64encode(str(nxt).encode()).decode()
                    query = urlencode(dict(params, cursor=token))
                    link = f"http://{self.headers['Host']}/hf/api/models?{query}"
                    headers["Link"] = f'<{link}>; rel="next"'
            elif path.startswith("/hf/api/models/") and "/tree/" in path:
                kind = "hf-tree"
                body = data.hf_tree(path[len("/hf/api/models/") :].split("/tree/")[0])
            elif path == "/civitai/api/v1/models":
                kind = "civitai-list"
                body = data.civitai_page(int(params.get("cursor", 0)))
            elif path == "/_stats":
                body = data.counts
            elif path == "/_change":
                step = int(params["every"])
                data.changed = set(range(0, data.hf, step))
            data.counts[kind] = data.counts.get(kind, 0) + 1
            return body, headers

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    port_out.send(httpd.server_address[1])
    httpd.serve_forever()


def _get(url: str) -> Any:
    import requests

    return requests.get(url, timeout=30).json()


def _crawl(host: Any, db: str, workers: int) -> tuple[Any, float]:
    from modelscan.db.engine import open_store
    from modelscan.registry.base import crawl

    with open_store(db) as store:
        started = time.perf_counter()
        stats = crawl(host, store, workers=workers)
        return stats, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the sizes"
    )
    parser.add_argument("--db", help="index URL (default: a fresh SQLite file)")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    from modelscan.registry.civitai import CivitaiHost
    from modelscan.registry.http import HttpClient
    from modelscan.registry.huggingface import HuggingFaceHost

    data = Synthetic(int(HF_REPOS * args.scale), int(CIVITAI_MODELS * args.scale))
    recv, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=_serve, args=(data, send), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{recv.recv()}"
    tmp = tempfile.TemporaryDirectory()
    db = args.db or f"sqlite:///{tmp.name}/bench.sqlite"
    try:
        hf = HuggingFaceHost(HttpClient("huggingface"), f"{base}/hf")
        stats, seconds = _crawl(hf, db, args.workers)
        full = _get(f"{base}/_stats")
        repos, sent = stats.listings, full.get("hf-list", 0) + full.get("hf-tree", 0)
        print(
            f"huggingface full crawl: {repos} repos, {stats.files} files, "
            f"{sent} requests = {sent / repos:.3f} per repo "
            f"({full.get('hf-list', 0)} list pages + {full.get('hf-tree', 0)} trees), "
            f"{seconds:.1f}s, {repos / seconds:.0f} repos/s"
        )
        _get(f"{base}/_change?every=100")
        stats2, seconds2 = _crawl(hf, db, args.workers)
        after = _get(f"{base}/_stats")
        lists = after.get("hf-list", 0) - full.get("hf-list", 0)
        trees = after.get("hf-tree", 0) - full.get("hf-tree", 0)
        print(
            f"huggingface recrawl after 1% changed: {lists + trees} requests "
            f"({lists} list pages + {trees} trees for {stats2.changed} changed repos, "
            f"{stats2.unchanged} unchanged), {seconds2:.1f}s, "
            f"{stats2.listings / seconds2:.0f} repos/s"
        )
        cv = CivitaiHost(HttpClient("civitai"), f"{base}/civitai")
        stats3, seconds3 = _crawl(cv, db, args.workers)
        print(
            f"civitai full crawl: {stats3.listings} models, {stats3.files} files, "
            f"{stats3.requests} requests, {seconds3:.1f}s, "
            f"{stats3.listings / seconds3:.0f} models/s"
        )
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the crawler: {rss:.0f} MB")
    finally:
        server.terminate()
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
