"""The shared CLI pieces: --db/--json options, the index opened and closed, hints."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import pytest
from click.testing import CliRunner

from modelscan import errors
from modelscan.cli.options import (
    CRAWL_HINTS,
    db_option,
    hint_for,
    json_option,
    open_index,
)


def test_hints_are_chosen_by_exception_type() -> None:
    """A rate limit gets its hint whatever its text; a plain StoreError gets none."""
    limited = errors.RateLimited("civitai", "https://x", retry_after=None)
    assert hint_for(limited) == "lower --rate, or set the host's token"
    down = errors.HostUnavailable("huggingface", "https://x", "no answer")
    assert hint_for(down) is not None
    assert hint_for(errors.StoreError("rate limited, says the text")) is None


def test_a_crawl_run_has_hints_of_its_own() -> None:
    """During a crawl a refusal means the token and a host down means later."""
    refused = errors.AuthRequired("civitai", "https://x", "HTTP 401", status=401)
    assert hint_for(refused) is None  # elsewhere the message says what to set
    assert "unset it to crawl anonymously" in str(hint_for(refused, CRAWL_HINTS))
    down = errors.HostUnavailable("huggingface", "https://x", "no answer")
    assert "the crawl resumes where it stopped" in str(hint_for(down, CRAWL_HINTS))
    limited = errors.RateLimited("civitai", "https://x", retry_after=None)
    assert hint_for(limited, CRAWL_HINTS) == hint_for(limited)
    assert hint_for(errors.StoreError("lock held"), CRAWL_HINTS) is None


def test_db_and_json_options_and_env_var(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """--db falls back to MODELSCAN_DATABASE_URL; --json is the as_json flag."""

    @click.command()
    @db_option
    @json_option
    def show(db: str | None, as_json: bool) -> None:
        click.echo(f"{db} {as_json}")

    monkeypatch.setenv("MODELSCAN_DATABASE_URL", "sqlite:///env.sqlite")
    assert CliRunner().invoke(show, ["--json"]).output == "sqlite:///env.sqlite True\n"
    out = CliRunner().invoke(show, ["--db", "sqlite:///x.sqlite"]).output
    assert out == "sqlite:///x.sqlite False\n"


def test_open_index_migrates_then_reads_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A writable open creates the index; a read-only one reads it, refuses writes."""
    url = f"sqlite:///{tmp_path / 'index.sqlite'}"
    with open_index(url) as store:
        assert store.row_counts()["repos"] == 0
    with open_index(url, read_only=True) as store:
        assert store.read_only
        assert store.host_names() == []
        with pytest.raises(errors.ReadOnlyViolation):
            store.save_link_state({"watermark": None}, datetime.now(UTC))
