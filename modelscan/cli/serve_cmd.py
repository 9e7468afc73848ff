"""``modelscan serve``: browse the index in Datasette, read-only, with its meaning.

The command checks that Datasette is installed (the ``[web]`` extra) and that
the index is a SQLite file (Datasette serves SQLite only), writes the metadata
of ``modelscan.web.metadata`` (titles, descriptions, canned queries) to a
temporary file and runs ``datasette serve`` on it: ``--immutable`` by default,
or, with ``--live``, opened read-only (``mode=ro``) so a running crawl shows.

Example:
    $ modelscan serve --port 8001
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from modelscan.cli.options import db_option


def sqlite_file(db: str | None) -> Path:
    """The SQLite file behind ``--db`` (default: the default index).

    Raises:
        click.UsageError: the index is not a SQLite file, or there is none.
    """
    from modelscan.db.engine import default_url, hide_password, parse_url, sqlite_path

    url = db or default_url()
    parsed = parse_url(url)
    path = sqlite_path(parsed)
    if parsed.get_backend_name() != "sqlite":
        raise click.UsageError(
            f"{hide_password(url)}: Datasette serves SQLite files only; for a "
            "PostgreSQL index use `modelscan sql` or psql"
        )
    if path is None or not path.is_file():
        raise click.UsageError(
            f"{hide_password(url)}: no index file there; crawl into it first"
        )
    return path


def datasette_args(
    path: Path, metadata: Path, *, host: str, port: int, live: bool
) -> list[str]:
    """The ``datasette serve`` command line for the index file."""
    mode = [str(path)] if live else ["--immutable", str(path)]
    return [
        sys.executable, "-m", "datasette", "serve", *mode,
        "--metadata", str(metadata), "--host", host, "--port", str(port),
        "--setting", "sql_time_limit_ms", "5000",
        "--setting", "allow_download", "off",
    ]  # fmt: skip


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address.")
@click.option("--port", type=click.IntRange(0, 65535), default=8001,
              show_default=True, help="Port (0: any free one).")  # fmt: skip
@click.option(
    "--live", is_flag=True, help="Show a running crawl's writes (read-only still)."
)
@click.option("--metadata-out", type=click.Path(dir_okay=False),
              help="Write Datasette's metadata JSON here and exit.")  # fmt: skip
@db_option
def serve(
    host: str, port: int, live: bool, metadata_out: str | None, db: str | None
) -> None:
    r"""Browse the index in Datasette, read-only, every table and column described.

    Canned queries answer the README's questions: where else a file lives, the
    most copied weights and their takedown cost, what disappeared in a period,
    the most fine-tuned bases, declared parents not crawled yet. Needs the
    optional extra: pip install 'modelscan-provenance[web]'.

    \b
    Example:
        modelscan serve
        modelscan serve --db sqlite:///index.sqlite --port 8002 --live
    """
    from modelscan.web.metadata import datasette_metadata

    if importlib.util.find_spec("datasette") is None:
        raise click.UsageError(
            "Datasette is not installed: install modelscan-provenance[web]"
        )
    path = sqlite_file(db)
    meta = json.dumps(datasette_metadata(path.stem), indent=2)
    if metadata_out:  # for running datasette by hand, or publishing
        Path(metadata_out).write_text(meta)
        click.echo(f"metadata written to {metadata_out}", err=True)
        return
    with tempfile.TemporaryDirectory(prefix="modelscan-serve-") as tmp:
        meta_file = Path(tmp) / "metadata.json"
        meta_file.write_text(meta)
        args = datasette_args(path, meta_file, host=host, port=port, live=live)
        click.echo(f"serving {path} read-only on http://{host}:{port}/", err=True)
        code = _run(args)
    if code:
        raise click.ClickException(f"datasette exited with status {code}")


def _run(args: list[str]) -> int:
    """Run Datasette until it exits; Ctrl-C or SIGTERM here stops it too."""
    child = subprocess.Popen(args)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, stop)
    try:
        return child.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, before)
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


COMMANDS: list[click.Command] = [serve]
