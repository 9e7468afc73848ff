"""``modelscan crawl`` against hosts that fail as the real ones do.

The world served is the recorded one plus a gated PEFT adapter (its
adapter_config.json refused as the Hub refuses a gated file: 401 anonymous,
403 to a token that was not granted). Faults are injected per endpoint kind:
a reset mid-body, a truncated body, 5xx. Each test asserts what the index holds
afterwards, that no traceback reached the user, and the exit status.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from indexrows import query
from replay import DATA, ReplayServer

from modelscan.cli import cli

GATED = "modelscan-tests/llama-3-gated-lora"
GATED_SHA = "5c1e7f0e9d6a4b3c2a1f0e9d8c7b6a5f4e3d2c1b"
REPLICATE_TOKEN = "r8_failure-test-token"


def write_gated_adapter(root: Path) -> None:
    """Add a gated adapter to ``root``, shaped like the recorded zephyr LoRA."""
    models = root / "huggingface" / "api" / "models"
    record = json.loads(
        (models / "modelscan-tests" / "zephyr-7b-lora.json").read_text()
    )
    base = "meta-llama/Llama-3.1-8B-Instruct"
    record.update(
        id=GATED, modelId=GATED, sha=GATED_SHA, gated="manual",
        lastModified="2024-11-03T10:00:00.000Z",
        tags=["peft", "safetensors", f"base_model:adapter:{base}"],
        cardData={"library_name": "peft"},
    )  # fmt: skip
    (models / f"{GATED}.json").write_text(json.dumps(record, indent=1))
    resolve = root / "huggingface" / GATED / "resolve" / GATED_SHA
    resolve.mkdir(parents=True)
    config = {"base_model_name_or_path": base, "peft_type": "LORA"}
    (resolve / "adapter_config.json").write_text(json.dumps(config))


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """The recorded hosts plus the gated adapter, in a folder of this test's own."""
    root = tmp_path / "hosts"
    shutil.copytree(DATA, root)
    write_gated_adapter(root)
    return root


@pytest.fixture(autouse=True)
def _no_real_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff sleeps are recorded, not slept (only the clock is faked)."""
    waits: list[float] = []
    monkeypatch.setattr("time.sleep", waits.append)
    return waits


def crawl(db: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["crawl", "--db", db, *args])


def assert_clean_exit(result: Result, code: int) -> None:
    """The exit status is ``code`` and nothing escaped as a traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def repos(db: str, host: str = "huggingface") -> dict[str, str]:
    return dict(query(db, f"SELECT host_id, status FROM repos WHERE host = '{host}'"))


def index_files(db: str) -> set[tuple[Any, ...]]:
    """(host, repo, path, sha256) of every live file."""
    return set(
        query(
            db,
            "SELECT r.host, r.host_id, f.path, f.sha256 FROM files f "
            "JOIN repos r ON r.id = f.repo_id WHERE f.gone_at IS NULL",
        )
    )


def index_state(db: str) -> set[tuple[Any, ...]]:
    """Live files, and declared parents as (host, repo, "parent", ref, source)."""
    parents = query(
        db,
        "SELECT r.host, r.host_id, 'parent', l.parent_ref, l.source FROM lineage l "
        "JOIN repos r ON r.id = l.child_repo_id",
    )
    return index_files(db) | set(parents)


def test_gated_adapter_is_kept_gated_and_the_anonymous_crawl_finishes(
    env: dict[str, str], server: ReplayServer, tmp_path: Path
) -> None:
    """401 GatedRepo on adapter_config.json: repo gated with its tree, crawl ok."""
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    result = crawl(db, "--host", "huggingface")
    assert_clean_exit(result, 0)
    assert server.count(rf"/huggingface/{GATED}/resolve/") == 1
    assert repos(db) == {
        rid: ("gated" if rid == GATED or r.get("gated") else "live")
        for rid, r in server.hf_records().items()
    }
    paths = {p for _, rid, p, _ in index_files(db) if rid == GATED}
    assert paths == {".gitattributes", "README.md", "adapter_config.json",
                     "adapter_model.safetensors"}  # fmt: skip
    (extra,) = query(db, f"SELECT extra FROM repos WHERE host_id = '{GATED}'")[0]
    unread = json.loads(extra)["unread"]
    assert "HTTP 401" in unread["adapter_config.json"]
    assert "HF_TOKEN" in unread["adapter_config.json"]
    assert "1 gated repos with lineage files unread" in result.output
    sources = {r[4] for r in index_state(db) if r[1] == GATED and r[2] == "parent"}
    assert sources == {"declared-tag"}  # not declared-file: the file was never read


def test_gated_adapter_with_an_ungranted_token_is_403_and_kept_gated(
    env: dict[str, str],
    server: ReplayServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token the repo never granted gets 403 GatedRepo: same index, exit 0."""
    monkeypatch.setenv("HF_TOKEN", "hf_not-granted")
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    result = crawl(db, "--host", "huggingface", "--json")
    assert_clean_exit(result, 0)
    assert repos(db)[GATED] == "gated"
    (extra,) = query(db, f"SELECT extra FROM repos WHERE host_id = '{GATED}'")[0]
    assert "HTTP 403" in json.loads(extra)["unread"]["adapter_config.json"]
    (hf,) = json.loads(result.stdout)["hosts"]
    assert hf["unread"] == 1 and hf["errors"] == 0  # noqa: PT018
    assert "hf_not-granted" not in result.output + str(extra)


@pytest.mark.parametrize(
    ("variable", "host", "token"),
    [
        ("HF_TOKEN", "huggingface", "hf_revoked"),
        ("CIVITAI_API_TOKEN", "civitai", "civitai-revoked"),
        ("REPLICATE_API_TOKEN", "replicate", "r8_revoked"),
    ],
)
def test_a_bad_token_is_one_line_naming_its_variable(
    env: dict[str, str],
    server: ReplayServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    host: str,
    token: str,
) -> None:
    """401 on the list endpoint: exit 1, one error line naming the env var."""
    monkeypatch.setenv(variable, token)
    server.bad_tokens.add(token)
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    result = crawl(db, "--host", host)
    assert_clean_exit(result, 1)
    assert "HTTP 401" in result.stderr
    assert variable in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "hint: the token in the host's variable is wrong or lacks access; "
        "unset it to crawl anonymously"
    )
    assert token not in result.output
    assert repos(db, host) == {}
    ((status,),) = query(db, "SELECT status FROM crawl_runs")
    assert status == "failed"


def test_all_hosts_crawled_when_one_has_a_bad_token(
    env: dict[str, str],
    server: ReplayServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--host all goes on past a failing host; the last line says which and why."""
    monkeypatch.setenv("HF_TOKEN", "hf_revoked")
    monkeypatch.setenv("REPLICATE_API_TOKEN", REPLICATE_TOKEN)
    server.bad_tokens.add("hf_revoked")
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    result = crawl(db, "--host", "all")
    assert_clean_exit(result, 1)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("modelscan: error: 1 of 5 hosts failed (huggingface: ")
    assert "HF_TOKEN" in last
    hosts = {h for (h,) in query(db, "SELECT DISTINCT host FROM repos")}
    assert hosts == {"civitai", "replicate", "modelscope", "ollama"}


# Every kind of endpoint a crawl reads, as the replay server sees its path.
ENDPOINTS = {
    "hf-list": r"/huggingface/api/models\?",
    "hf-tree": r"/huggingface/api/models/HuggingFaceH4/zephyr-7b-beta/tree/",
    "hf-resolve": r"/huggingface/modelscan-tests/zephyr-7b-lora/resolve/",
    "civitai-models": r"/civitai/api/v1/models\?",
    "replicate-models": r"/replicate/v1/models\?|/replicate/v1/models$",
    "replicate-versions": r"/replicate/v1/models/[^?]+/versions",
    "modelscope-list": r"/modelscope/api/v1/dolphin/models",
    "modelscope-files": r"/modelscope/api/v1/models/Qwen/[^?]+/repo/files",
}


@pytest.fixture
def clean_index(
    env: dict[str, str],
    server: ReplayServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> set[tuple[Any, ...]]:
    """The live files and declared parents of a crawl of every host, no faults."""
    monkeypatch.setenv("REPLICATE_API_TOKEN", REPLICATE_TOKEN)
    db = f"sqlite:///{tmp_path / 'clean.sqlite'}"
    assert_clean_exit(crawl(db, "--host", "all"), 0)
    server.reset()
    return index_state(db)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@pytest.mark.parametrize("fault", ["reset", "truncate", "503"])
def test_a_broken_answer_on_any_endpoint_is_retried(
    clean_index: set[tuple[Any, ...]],
    server: ReplayServer,
    tmp_path: Path,
    endpoint: str,
    fault: str,
) -> None:
    """Two broken answers in a row on one endpoint: same index, exit 0."""
    pattern = ENDPOINTS[endpoint]
    if fault == "503":
        server.fail(pattern, 503, times=2)
    else:
        server.fail(pattern, times=2, **{fault: True})
    db = f"sqlite:///{tmp_path / 'faulty.sqlite'}"
    result = crawl(db, "--host", "all", "--json")
    assert_clean_exit(result, 0)
    assert server.count(pattern) >= 3  # the two failures, then the answer
    assert index_state(db) == clean_index
    assert all(h["errors"] == 0 for h in json.loads(result.stdout)["hosts"])


def test_a_tree_that_never_answers_is_an_item_error_and_the_crawl_goes_on(
    clean_index: set[tuple[Any, ...]], server: ReplayServer, tmp_path: Path
) -> None:
    """One repo's tree resets every time: tried in the run twice, recorded, exit 0."""
    server.fail(ENDPOINTS["hf-tree"], reset=True, times=None)
    db = f"sqlite:///{tmp_path / 'faulty.sqlite'}"
    result = crawl(db, "--host", "huggingface", "--json")
    assert_clean_exit(result, 0)
    (hf,) = json.loads(result.stdout)["hosts"]
    assert (hf["status"], hf["errors"], hf["retried"]) == ("ok", 1, 1)
    assert server.count(ENDPOINTS["hf-tree"]) == 2 * 6  # 2 tries x (1 + 5 retries)
    ((item, message),) = query(db, "SELECT item, message FROM crawl_errors")
    assert item == "HuggingFaceH4/zephyr-7b-beta"
    assert "unreachable after 6 attempts" in message
    hf_clean = {row for row in clean_index if row[0] == "huggingface"}
    assert index_state(db) == {r for r in hf_clean if r[1] != item}
    server.reset()  # the next run fetches it again
    assert_clean_exit(crawl(db, "--host", "huggingface"), 0)
    assert index_state(db) == hf_clean


def test_a_list_endpoint_that_never_answers_stops_only_that_host(
    clean_index: set[tuple[Any, ...]], server: ReplayServer, tmp_path: Path
) -> None:
    """Civitai's list resets every time: Civitai failed, the others complete."""
    server.fail(ENDPOINTS["civitai-models"], reset=True, times=None)
    db = f"sqlite:///{tmp_path / 'faulty.sqlite'}"
    result = crawl(db, "--host", "all", "--json")
    assert_clean_exit(result, 1)
    status = {h["host"]: h["status"] for h in json.loads(result.stdout)["hosts"]}
    assert status == {"huggingface": "ok", "civitai": "failed", "replicate": "ok",
                      "ollama": "ok", "modelscope": "ok"}  # fmt: skip
    assert index_state(db) == {r for r in clean_index if r[0] != "civitai"}
    alone = crawl(db, "--host", "civitai")
    assert_clean_exit(alone, 1)
    assert alone.stderr.strip().splitlines()[-1] == (
        "hint: the host is down or unreachable: run again later, "
        "the crawl resumes where it stopped"
    )


@pytest.mark.parametrize(
    ("variable", "api_base"),
    [("MODELSCAN_CIVITAI_URL", "/api/v1"), ("MODELSCAN_REPLICATE_URL", "/v1")],
)
def test_a_base_url_given_with_its_api_path_works(
    clean_index: set[tuple[Any, ...]],
    server: ReplayServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    api_base: str,
) -> None:
    """``.../api/v1`` (Civitai) and ``.../v1`` (Replicate), as documented, work."""
    host = "civitai" if "CIVITAI" in variable else "replicate"
    monkeypatch.setenv(variable, server.base(host) + api_base + "/")
    db = f"sqlite:///{tmp_path / 'api-path.sqlite'}"
    assert_clean_exit(crawl(db, "--host", host), 0)
    assert server.count(f"/{host}{api_base}{api_base}/") == 0
    assert index_state(db) == {r for r in clean_index if r[0] == host}


def test_a_repo_back_with_the_same_revision_gets_its_files_again(
    env: dict[str, str], server: ReplayServer, world: Path, tmp_path: Path
) -> None:
    """Gone at visit 1, back unchanged at visit 2: its files live again, appeared."""
    folder = world / "huggingface" / "api" / "models" / "deepset"
    shutil.copy(
        folder / "roberta-base-squad2.json", folder / "roberta-base-squad2_visit2.json"
    )
    db = f"sqlite:///{tmp_path / 'i.sqlite'}"
    repo = "r.host_id = 'deepset/roberta-base-squad2'"
    live = "SELECT count(*) FROM files f JOIN repos r ON r.id = f.repo_id " \
           f"WHERE {repo} AND f.gone_at IS NULL"  # fmt: skip
    assert_clean_exit(crawl(db, "--host", "huggingface"), 0)
    (before,) = query(db, live)[0]
    assert before > 0
    server.visit = 1
    assert_clean_exit(crawl(db, "--host", "huggingface"), 0)
    assert query(db, live)[0] == (0,)
    assert repos(db)["deepset/roberta-base-squad2"] == "gone"
    server.visit = 2
    assert_clean_exit(crawl(db, "--host", "huggingface"), 0)
    assert query(db, live)[0] == (before,)
    assert repos(db)["deepset/roberta-base-squad2"] == "live"
    appeared = query(db, "SELECT count(*) FROM events e JOIN repos r ON r.id = "
                         f"e.repo_id WHERE {repo} AND e.kind = 'appeared' "
                         "AND e.file_id IS NOT NULL")  # fmt: skip
    assert appeared == [(2 * before,)]  # once at the first crawl, once on return
