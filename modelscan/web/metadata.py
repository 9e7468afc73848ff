"""Datasette metadata for ``modelscan serve``: every table, view and column described.

One place for what the index's tables and columns mean (README "Tables" and
"Views", DESIGN.md sections 5 and 6): :data:`COLUMNS` says what a column name
means wherever it appears, :data:`TABLES` gives each table and view its title,
description and the columns whose meaning differs there; :data:`QUERIES` are
the canned queries answering README's questions. :func:`datasette_metadata`
builds Datasette's metadata document from them (format: Datasette 0.65
"Metadata", ``databases.<name>.tables.<table>.columns`` and ``queries``).

Example:
    >>> meta = datasette_metadata("index")
    >>> meta["databases"]["index"]["queries"]["where_else"]["title"]
    'Where else does this file live?'
"""

from __future__ import annotations

from typing import Any

TITLE = "modelscan index"
DESCRIPTION = (
    "Model files, the hosts and repos holding them, their fingerprints and "
    "lineage, as crawled by modelscan. Read-only."
)
COLUMNS: dict[str, str] = {
    "id": "row id",
    "host": "host name: huggingface, civitai, replicate, ollama, modelscope, local",
    "host_id": "the repo's id on its host (org/name, a Civitai model id, ...)",
    "repo_id": "the repo (repos.id)",
    "file_id": "the occurrence (files.id)",
    "blob_id": "the blob (blobs.id)",
    "run_id": "the crawl run (crawl_runs.id)",
    "version_id": "the version (versions.id)",
    "sha256": "SHA-256 of the whole file, lower-case hex (the Hub's LFS oid)",
    "owner": "the account holding the repo on its host",
    "name": "name",
    "url": "URL on the host",
    "kind": "kind",
    "status": "live, gated, gone or taken_down",
    "path": "path of the file inside its repo",
    "size": "bytes",
    "downloads": "downloads as the host counts them (Hugging Face: last 30 days)",
    "downloads_all_time": "all-time downloads, where the host gives them",
    "likes": "likes or favourites on the host",
    "license": "license the host lists",
    "revision": "head revision: HF commit, Civitai or Replicate version id",
    "updated_at": "when the host says it last changed",
    "first_seen": "when a crawl first saw it (UTC)",
    "last_seen": "when a crawl last saw it (UTC)",
    "gone_at": "when a crawl found it gone (null while live)",
    "published_at": "the host's own date for it (commit, version publication)",
    "first_published": "earliest host date among its copies",
    "extra": "other host fields kept as JSON",
    "at": "when (UTC)",
    "started_at": "when it started (UTC)",
    "finished_at": "when it finished (UTC)",
    "params": "the options it ran with (JSON)",
    "stats": "its counts (JSON)",
    "pid": "process id",
    "machine": "host name of the machine",
    "family": "weights family: the weights_id, else the sha256",
    "copies": "hosted occurrences ever seen",
    "live_copies": "hosted occurrences not gone",
    "hosts": "distinct hosts that held a copy",
    "owners": "distinct (host, owner) accounts that held a copy",
    "takedown_cost": "distinct (host, owner) accounts holding a live copy",
    "jurisdictions": "distinct countries of the hosts holding a live copy",
    "operators": "distinct operators of the hosts holding a live copy",
    "country": "the host operator's country (ISO code)",
    "operator": "the company running the host",
    "survived": "gone copies that had a live copy in another repo then",
    "gone_copies": "copies that went gone",
    "blobs": "distinct blobs",
    "relation": "finetune, adapter, quantized, merge, copy or conversion",
    "source": "declared-card, declared-file, identical-hash, same-content, "
    "same-weights or weight-similarity",
    "confidence": "0..1: 1 for exact matches, the median correlation for similarity",
    "evidence": "what the edge rests on (JSON)",
    "parent_ref": "the parent as declared or matched (hf:org/name, sha256:<hex>)",
    "parent_repo_id": "the parent repo, once crawled",
    "parent_sha256": "the parent file, when a file is the parent",
    "child_repo_id": "the child repo",
    "child_sha256": "the child file (null: declared for the whole repo)",
    "content_id": "BLAKE3 over named tensors and their digests: same named weights",
    "weights_id": "BLAKE3 over the tensor digests: same weights under any names",
    "structure_id": "BLAKE3 over tensor names, dtypes, shapes: same architecture",
    "format": "file format: safetensors, gguf, torch-zip, pickle, ...",
    "dtype": "the dtype holding the most elements",
}
Table = tuple[str, str, dict[str, str]]  # title, description, column overrides
TABLES: dict[str, Table] = {
    "alembic_version": (
        "Schema revision",
        "the migration the index is at",
        {"version_num": "Alembic revision id"},
    ),  # fmt: skip
    "hosts": (
        "Hosts",
        "one row per host, with its operator and country",
        {"name": "host name", "first_seen": "when the index first used it"},
    ),  # fmt: skip
    "repos": (
        "Repos",
        "one row per repo on a host (host, host_id unique)",
        {
            "name": "the repo's name",
            "kind": "model, checkpoint, LoRA, ...",
            "published_at": "the host's creation date of the repo",
        },
    ),  # fmt: skip
    "versions": (
        "Versions",
        "revisions of a repo: HF commits, Civitai and Replicate versions",
        {"revision": "the revision id"},
    ),  # fmt: skip
    "files": (
        "Files",
        "one row per occurrence: a file at a path in a repo "
        "(host local: your own files)",
        {
            "status": "live, gone or taken_down",
            "published_at": "when the host says this content appeared at this path",
            "url": "download URL",
        },
    ),  # fmt: skip
    "blobs": (
        "Blobs",
        "one row per content (sha256), fingerprinted here or hashed by a host",
        {
            "size": "bytes",
            "autov1": "A1111 old hash (8 hex)",
            "autov2": "first 10 hex of sha256",
            "autov3": "kohya/A1111 LoRA hash",
            "blake3": "BLAKE3 of the whole file",
            "crc32": "zlib CRC-32, 8 hex",
            "tensor_count": "tensors",
            "parameter_count": "elements in all tensors",
            "dtype_summary": "elements per dtype (JSON)",
            "metadata": "the format's own metadata (JSON)",
            "safety_verdict": "safe, suspicious or dangerous (pickles)",
            "pickle_safety": "what a load would import (JSON)",
            "fingerprinted_at": "when it was fingerprinted (null: hashes only)",
            "remote": "fingerprinted through HTTP Range, without every byte",
        },
    ),  # fmt: skip
    "tensors": (
        "Tensors",
        "tensors of fingerprinted blobs",
        {
            "position": "order in the file",
            "name": "tensor name",
            "shape": "shape (JSON)",
            "nbytes": "bytes",
            "digest": "BLAKE3 of its bytes",
            "sketch": "256 float16 values from its middle (BLOB)",
        },
    ),  # fmt: skip
    "claims": (
        "Claims",
        "hashes and identities a file states about itself or its base",
        {
            "key": "where the claim was read",
            "value": "the claim",
            "meaning": "what it names",
            "verified": "checked against the index",
        },
    ),  # fmt: skip
    "lineage": (
        "Lineage edges",
        "one row per parent edge, declared or inferred",
        {},
    ),  # fmt: skip
    "crawl_runs": (
        "Crawl runs",
        "one row per crawl run of a host",
        {"status": "running, ok, failed or abandoned"},
    ),  # fmt: skip
    "crawl_locks": (
        "Crawl locks",
        "the lock a running crawl holds per host",
        {"heartbeat_at": "last sign of life of the holder"},
    ),  # fmt: skip
    "crawl_state": (
        "Crawl cursors",
        "where a host's crawl resumes",
        {"key": "which listing", "cursor": "the saved cursor"},
    ),  # fmt: skip
    "crawl_errors": (
        "Crawl errors",
        "items a crawl could not process",
        {"item": "the item", "message": "what went wrong"},
    ),  # fmt: skip
    "events": (
        "Events",
        "changes seen: appeared, changed, gone, taken_down",
        {
            "kind": "appeared, changed, gone or taken_down",
            "detail": "what changed (JSON)",
        },
    ),  # fmt: skip
    "hash_lookups": (
        "Hash lookups",
        "hashes asked of a host's by-hash API",
        {"asked_at": "when it was asked"},
    ),  # fmt: skip
    # Rank counters kept as the index changes (db/counters.py), read by
    # blob_copies, spread_copies and spread --top through their indexes.
    "blob_counts": (
        "Counters per blob",
        "copies, hosts and accounts of a blob, kept as the index changes",
        {
            "family": "the family its copies count in",
            "total_copies": "occurrences ever seen",
            "hosts": "hosts with a live copy",
            "owners": "accounts with a live copy",
        },
    ),  # fmt: skip
    "blob_hosts": (
        "Counters per blob and host",
        "live copies of a blob on a host",
        {},
    ),  # fmt: skip
    "blob_accounts": (
        "Counters per blob and account",
        "copies of a blob one (host, owner) account holds",
        {},
    ),  # fmt: skip
    "family_counts": (
        "Counters per family",
        "copies, hosts, accounts and takedown "
        "cost of a weights family, kept as the index changes",
        {},
    ),  # fmt: skip
    "family_blobs": (
        "Counters per family and blob",
        "hosted copies of a blob counted in a family",
        {},
    ),  # fmt: skip
    "family_hosts": (
        "Counters per family and host",
        "copies of a family on a host, and the accounts holding them",
        {},
    ),  # fmt: skip
    "family_accounts": (
        "Counters per family and account",
        "copies of a family one account holds",
        {},
    ),  # fmt: skip
    "family_repos": (
        "Counters per family and repo",
        "a hosted repo holding a copy of a family, with the downloads counted for "
        "it (the family's downloads are their sum)",
        {},
    ),  # fmt: skip
    "blob_copies": (
        "Copies per blob",
        "one row per blob: copies, hosts, owners",
        {
            "total_copies": "occurrences ever seen",
            "live_copies": "occurrences live",
            "hosts": "distinct hosts with a live copy",
            "owners": "distinct accounts with a live copy (the takedown cost)",
        },
    ),  # fmt: skip
    "blob_identity": (
        "Same things",
        "pairs of blobs that are the same thing",
        {
            "other_sha256": "the other blob",
            "kind": "sha256 (itself), content_id or weights_id",
        },
    ),  # fmt: skip
    "lineage_edges": (
        "Lineage, readable",
        "every edge with child and parent named by host and id",
        {
            "child_host": "host of the child",
            "child": "the child's host id",
            "parent_host": "host of the parent (null: not crawled)",
            "parent": "the parent's host id, else the declared text",
            "resolved": "1 when the parent is in the index",
        },
    ),  # fmt: skip
    "repo_summary": (
        "Repos, summed",
        "one row per repo: files, blobs, parents, children",
        {
            "files": "live files",
            "blobs": "distinct blobs",
            "declared_parents": "parents its card or files declare",
            "children": "repos declaring or inferred to derive from it",
        },
    ),  # fmt: skip
    "spread_family_files": (
        "Spread: occurrences",
        "every hosted occurrence with its weights family and account",
        {},
    ),  # fmt: skip
    "spread_copies": (
        "Spread per family",
        "per weights family: copies, takedown cost, jurisdictions, survival",
        {"sha256": "one member of the family (the smallest hash)"},
    ),  # fmt: skip
    "spread_hosts": (
        "Spread per host",
        "per family and host: copies, owners, takedown cost, dates",
        {},
    ),  # fmt: skip
    "spread_survival": (
        "Survival",
        "each copy that went gone, and whether another repo held a live copy then",
        {"survived": "1 if another repo held a live copy when it went"},
    ),  # fmt: skip
    "spread_derivatives": (
        "Derivatives",
        "per parent repo and relation: children",
        {
            "children": "child repos",
            "live_children": "child repos live",
            "declared_children": "child repos whose card declares it",
        },
    ),  # fmt: skip
}
QUERIES: dict[str, tuple[str, str, str]] = {  # name -> title, description, SQL
    "where_else": (
        "Where else does this file live?",
        "Every occurrence of a file by sha256 or a hex prefix of it (AutoV2).",
        "SELECT r.host, r.host_id, r.owner, f.path, f.status, f.published_at,\n"
        "       f.first_seen, f.gone_at, r.url\n"
        "FROM files f JOIN repos r ON r.id = f.repo_id\n"
        "WHERE f.sha256 >= lower(:sha256) AND f.sha256 < lower(:sha256) || 'g'\n"
        "ORDER BY coalesce(f.published_at, f.first_seen)",
    ),
    "most_copied": (
        "The most copied weights and their takedown cost",
        "Weights families by live copies: accounts, jurisdictions and operators "
        "a takedown must reach.",
        "SELECT sha256, copies, live_copies, hosts, owners, takedown_cost,\n"
        "       jurisdictions, operators, downloads, first_published,\n"
        "       gone_copies, survived\n"
        "FROM spread_copies ORDER BY live_copies DESC, takedown_cost DESC LIMIT 100",
    ),
    "gone_between": (
        "What disappeared in a period",
        "Repos and files found gone or taken down between two ISO dates.",
        "SELECT e.at, e.kind, r.host, r.host_id, r.owner, e.sha256\n"
        "FROM events e JOIN repos r ON r.id = e.repo_id\n"
        "WHERE e.kind IN ('gone', 'taken_down') AND e.at >= :since AND e.at < :until\n"
        "ORDER BY e.at",
    ),
    "most_finetuned": (
        "The most fine-tuned bases",
        "Parent repos by fine-tunes, declared or inferred.",
        "SELECT host, host_id, children, live_children, declared_children\n"
        "FROM spread_derivatives WHERE relation = 'finetune'\n"
        "ORDER BY children DESC LIMIT 100",
    ),
    "parents_not_crawled": (
        "Declared parents not yet crawled",
        "Base models cards and files name that the index does not hold.",
        "SELECT parent, count(*) AS children FROM lineage_edges\n"
        "WHERE resolved = 0 GROUP BY parent ORDER BY children DESC LIMIT 100",
    ),
}
HIDDEN = ("alembic_version", "crawl_locks", "crawl_state", "hash_lookups",
          "blob_counts", "blob_hosts", "blob_accounts", "family_counts",
          "family_blobs", "family_hosts", "family_accounts",
          "family_repos")  # fmt: skip


def describe(table: str, column: str) -> str | None:
    """What ``column`` of ``table`` holds; None when nothing says."""
    own = TABLES.get(table, ("", "", {}))[2]
    return own.get(column) or COLUMNS.get(column)


def datasette_metadata(
    db_name: str, columns: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """Return Datasette's metadata for the index served as database ``db_name``.

    Args:
        db_name: the database's name in Datasette (the file's stem).
        columns: the live schema's columns per table or view; each gets its
            description (all the known ones when None).
    """
    tables: dict[str, Any] = {}
    for table, (title, description, own) in TABLES.items():
        names = (columns or {}).get(table) or sorted({*own, *COLUMNS})
        described = {c: d for c in names if (d := describe(table, c))}
        entry: dict[str, Any] = {"title": title, "description": description}
        entry["columns"] = described
        if table in HIDDEN:
            entry["hidden"] = True
        tables[table] = entry
    queries = {
        name: {"title": title, "description": description, "sql": sql}
        for name, (title, description, sql) in QUERIES.items()
    }
    database = {"description": DESCRIPTION, "tables": tables, "queries": queries}
    return {"title": TITLE, "description": DESCRIPTION,
            "databases": {db_name: database}}  # fmt: skip
