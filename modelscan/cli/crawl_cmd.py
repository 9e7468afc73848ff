"""``modelscan crawl``: fill the index from every host (Hugging Face, Civitai, ...).

The command builds each host with :func:`modelscan.registry.make_host` and runs
:func:`modelscan.registry.base.crawl` against the index; it only adds progress
on a terminal and the summary. The registry (huggingface_hub, requests) and the
index (SQLAlchemy) are imported inside the command so ``modelscan --help`` stays
fast.

Example:
    $ modelscan crawl --host civitai --limit 200
    $ REPLICATE_API_TOKEN=r8_... modelscan crawl --host all --json
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from modelscan.cli.host_inputs import host_inputs, page_hook, read_names
from modelscan.cli.options import (
    CRAWL_HINTS,
    db_option,
    hint_for,
    json_flag,
    open_index,
)
from modelscan.refs import HOST_PREFIXES

if TYPE_CHECKING:
    from modelscan.registry.base import CrawlStats

# The keys of modelscan.registry.HOSTS (a test checks), without importing the
# registry: huggingface_hub and requests would slow ``modelscan --help``.
HOST_NAMES = tuple(HOST_PREFIXES)


@click.command()
@click.option(
    "--host",
    "host_name",
    required=True,
    type=click.Choice([*HOST_NAMES, "all"]),
    help="Host to crawl, or all of them one after the other.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="Stop after this many listings (repos, models) per host.",
)
@click.option(
    "--max-pages",
    type=click.IntRange(min=1),
    help="Stop after this many list pages per host.",
)
@click.option("--author", help="Only this user's or organisation's listings.")
@click.option("--search", help="Only listings matching this text.")
@click.option("--filter", "tag", metavar="TAG", help="Only listings with this tag.")
@click.option(
    "--full",
    is_flag=True,
    help="Ignore the saved cursor: start again from the first page.",
)
@click.option(
    "--endpoint",
    metavar="URL",
    help="Base URL of the host (a mirror); overrides HF_ENDPOINT, "
    "MODELSCAN_CIVITAI_URL, MODELSCAN_REPLICATE_URL, MODELSCAN_OLLAMA_URL or "
    "MODELSCOPE_ENDPOINT.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="R",
    help="At most R requests per second to each host.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 32),
    default=4,
    show_default=True,
    help="Parallel requests for file trees and versions.",
)
@db_option
@click.option(
    "--deep",
    is_flag=True,
    help="Also fingerprint the listed model files remotely (HTTP Range, no "
    "download): each blob without a fingerprint is read once.",
)
@click.option(
    "--deep-budget-bytes",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --deep: stop reading files after N bytes in the run.",
)
@click.option(
    "--deep-budget-requests",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --deep: stop reading files after N requests in the run.",
)
@click.option(
    "--link",
    "then_link",
    is_flag=True,
    help="With --distributed: a worker runs `modelscan link` when the crawl is done.",
)
@click.option(
    "--distributed",
    is_flag=True,
    help="Enqueue the crawl for `modelscan worker` processes instead of running it.",
)
@click.option(
    "--wait",
    is_flag=True,
    help="With --distributed: wait until every task is done, then summarise.",
)
@click.option(
    "--budget",
    metavar="N/SECONDS",
    help="With --distributed: at most N requests in any SECONDS per token, shared "
    "by all workers (default: the host's documented budget, for the Hub 1000/300).",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME[:TAG]",
    help="With --host ollama: read this tag (repeatable); the tags the index "
    "knows are read too.",
)
@click.option(
    "--models-from",
    metavar="FILE",
    help="With --host ollama: read the tags listed in FILE (one name:tag a line).",
)
@click.option(
    "--by-hash",
    is_flag=True,
    help="With --host civitai: ask Civitai which of the index's sha256s it holds "
    "(100 a request); with --full, ask again those asked before.",
)
@json_flag("Print a JSON summary.")
def crawl(
    host_name: str,
    limit: int | None,
    max_pages: int | None,
    author: str | None,
    search: str | None,
    tag: str | None,
    full: bool,
    endpoint: str | None,
    rate: float | None,
    workers: int,
    db: str | None,
    deep: bool,
    deep_budget_bytes: int | None,
    deep_budget_requests: int | None,
    then_link: bool,
    distributed: bool,
    wait: bool,
    budget: str | None,
    models: tuple[str, ...],
    models_from: str | None,
    by_hash: bool,
    as_json: bool,
) -> None:
    """Crawl model hosts into the index, resuming where the last run stopped.

    Each run continues from the cursor saved with the last committed page, so
    a killed crawl loses nothing; a repo whose revision did not change costs no
    file request. Tokens come from HF_TOKEN, CIVITAI_API_TOKEN,
    MODELSCOPE_API_TOKEN and REPLICATE_API_TOKEN (Replicate needs one; without
    it --host all skips Replicate). Ollama's registry lists nothing: it reads
    the tags of --model, --models-from and those the index knows. A failing
    repo is retried once in the run, then recorded and skipped; a gated repo
    is kept with status gated. With --host all every host is crawled even when
    one fails. Exit status 1 when a host failed.

    \b
    Example:
        modelscan crawl --host huggingface --author openai --limit 100
        modelscan crawl --host civitai --rate 2
        modelscan crawl --host ollama --model gemma:2b --model llama3.2
        modelscan crawl --host civitai --by-hash
        modelscan crawl --host all --json
        modelscan crawl --host huggingface --distributed --wait
    """  # noqa: D301 (a real \b: click keeps the example's lines as they are)
    if endpoint and host_name == "all":
        raise click.UsageError(
            "--endpoint names one host's URL: use it with --host NAME"
        )
    names = list(HOST_NAMES) if host_name == "all" else [host_name]
    inputs = _check_inputs(host_name, models, models_from, by_hash=by_hash,
                           limit=limit, distributed=distributed)  # fmt: skip
    if (deep_budget_bytes or deep_budget_requests) and not deep:
        raise click.UsageError("--deep-budget-bytes/-requests go with --deep")
    if distributed and (deep_budget_bytes or deep_budget_requests):
        raise click.UsageError(
            "a distributed --deep crawl reads within each file's own budget; "
            "--deep-budget-bytes/-requests are for inline crawls"
        )
    if then_link and not distributed:
        raise click.UsageError("--link goes with --distributed; inline, run "
                               "`modelscan link` after the crawl")  # fmt: skip
    if distributed or wait or budget:
        spec = {"endpoint": endpoint, "author": author, "search": search,
                "tag": tag, "budget": budget, "full": full, "deep": deep,
                "link": then_link}  # fmt: skip
        _check_distributed(distributed, limit, max_pages, rate, budget)
        enqueued = [_enqueue_one(name, db, spec, wait=wait, as_json=as_json)
                    for name in names]  # fmt: skip
        _report(enqueued, as_json=as_json)
        return
    results: list[dict[str, Any]] = []
    with open_index(db) as store:
        for name in names:
            options = {"endpoint": endpoint, "rate": rate, "author": author,
                       "search": search, "tag": tag,
                       **host_inputs(name, store, names=inputs, by_hash=by_hash,
                                     full=full)}  # fmt: skip
            budgets = (deep_budget_bytes, deep_budget_requests) if deep else None
            result = _crawl_one(name, store, options, explicit=host_name != "all",
                                limit=limit, max_pages=max_pages, full=full,
                                workers=workers, as_json=as_json,
                                deep=budgets)  # fmt: skip
            results.append(result)
    _report(results, as_json=as_json)


def _report(results: list[dict[str, Any]], *, as_json: bool) -> None:
    """Print the summary of every host; exit 1 when one failed."""
    failed = [r for r in results if r["status"] == "failed"]
    if as_json:
        click.echo(json.dumps({"ok": not failed, "hosts": results}, indent=2))
    elif failed and len(results) > 1:
        reasons = "; ".join(f"{r['host']}: {r['error']}" for r in failed)
        click.echo(
            f"modelscan: error: {len(failed)} of {len(results)} hosts failed "
            f"({reasons})",
            err=True,
        )
    if failed:
        sys.exit(1)


def _check_inputs(host_name: str, models: tuple[str, ...], models_from: str | None,
                  *, by_hash: bool, limit: int | None,
                  distributed: bool) -> list[str]:  # fmt: skip
    """The Ollama tags given; refuse inputs of the wrong host (exit 2)."""
    if (models or models_from) and host_name not in ("ollama", "all"):
        raise click.UsageError("--model and --models-from go with --host ollama")
    if by_hash and host_name != "civitai":
        raise click.UsageError("--by-hash goes with --host civitai")
    if by_hash and limit:
        raise click.UsageError("--by-hash asks 100 hashes a page: use --max-pages, "
                               "not --limit")  # fmt: skip
    if distributed and (models or models_from or by_hash or host_name == "ollama"):
        raise click.UsageError("Ollama and --by-hash crawls run inline, "
                               "not --distributed")  # fmt: skip
    return read_names(models, models_from)


def _check_distributed(distributed: bool, limit: int | None, max_pages: int | None,
                       rate: float | None, budget: str | None) -> None:  # fmt: skip
    """Refuse options that a distributed crawl does not take (exit 2)."""
    from modelscan.cli.worker_cmd import need_celery
    from modelscan.distributed.budget import Limit

    if not distributed:
        raise click.UsageError("--wait and --budget go with --distributed")
    if limit or max_pages or rate:
        raise click.UsageError(
            "--limit, --max-pages and --rate are for inline crawls; "
            "a distributed crawl is paced by --budget"
        )
    if budget:
        try:
            Limit.parse(budget)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--budget") from None
    need_celery()


def _enqueue_one(name: str, db: str | None, options: dict[str, Any], *, wait: bool,
                 as_json: bool) -> dict[str, Any]:  # fmt: skip
    """Enqueue one host's crawl (and follow it with --wait); its summary."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import RedisError

    from modelscan.cli import CommandError
    from modelscan.db.engine import default_url
    from modelscan.distributed import enqueue_crawl, wait_for
    from modelscan.errors import AuthRequired, StoreError

    url = db or default_url()
    try:
        run_id = enqueue_crawl(name, url, **options)
    except (StoreError, AuthRequired) as exc:
        click.echo(f"{name}: failed: {exc}", err=True)
        return {"host": name, "status": "failed", "error": str(exc)}
    except (RedisError, OperationalError) as exc:
        raise CommandError(
            f"the broker or Redis does not answer ({type(exc).__name__}: {exc}); "
            "check MODELSCAN_BROKER_URL and MODELSCAN_REDIS_URL"
        ) from None
    if not wait:
        if not as_json:
            click.echo(f"{name}: enqueued as run {run_id}; workers crawl it "
                       "(modelscan status shows it)")  # fmt: skip
        return {"host": name, "status": "enqueued", "run_id": run_id}
    with _Progress(name, enabled=not as_json and sys.stderr.isatty()) as bar:
        stats = wait_for(url, run_id, progress=bar.update)
    if not as_json:
        click.echo(stats.summary(), err=stats.status == "failed")
    return stats.as_dict()


def _crawl_one(name: str, store: Any, options: dict[str, Any], *, explicit: bool,
               limit: int | None, max_pages: int | None, full: bool, workers: int,
               as_json: bool, deep: tuple[int | None, int | None] | None
               ) -> dict[str, Any]:  # fmt: skip
    """Crawl one host; return its summary (failures are reported, not raised)."""
    from modelscan.errors import AuthRequired, HostError, StoreError
    from modelscan.registry import make_host
    from modelscan.registry.base import CrawlStats, crawl
    from modelscan.registry.deep import Deep

    try:
        host = make_host(name, **options)
    except (AuthRequired, ValueError) as exc:
        if explicit and isinstance(exc, ValueError):
            raise click.UsageError(str(exc)) from None
        if explicit:
            raise
        click.echo(f"{name}: skipped: {exc}", err=True)
        return {"host": name, "status": "skipped", "error": str(exc)}
    stats = CrawlStats(host=name)
    hint = None
    reader = None
    if deep is not None:  # file reads get a client of their own (CDN, no API pace)
        reader = Deep.for_host(host.client, budget_bytes=deep[0],
                               budget_requests=deep[1])  # fmt: skip
    with _Progress(name, enabled=not as_json and sys.stderr.isatty()) as bar:
        try:
            crawl(host, store, limit=limit, max_pages=max_pages, full=full,
                  workers=workers, progress=page_hook(host, store, bar.update),
                  stats=stats, deep=reader)  # fmt: skip
        except (HostError, StoreError) as exc:
            stats.status, stats.error = "failed", host.client.redact(str(exc))
            hint = hint_for(exc, CRAWL_HINTS)
    if not as_json:
        click.echo(stats.summary(), err=stats.status == "failed")
        if hint:
            click.echo(f"hint: {hint}", err=True)
    return stats.as_dict()


class _Progress:
    """A tqdm bar of listings with files, requests and errors (terminals only)."""

    def __init__(self, name: str, *, enabled: bool) -> None:
        self.name, self.enabled = name, enabled
        self.bar: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(desc=self.name, unit=" repos", file=sys.stderr, leave=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def update(self, stats: CrawlStats) -> None:
        if self.bar is None:
            return
        self.bar.n = stats.listings
        self.bar.set_postfix(files=stats.files, details=stats.details,
                             requests=stats.requests, errors=stats.errors)  # fmt: skip


COMMANDS: list[click.Command] = [crawl]
