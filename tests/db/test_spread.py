"""Spread measures on a real index, in Python and as SQL views, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from lineage_world import (
    DAY,
    PUB0,
    T0,
    World,
    build,
    civitai,
    hf,
    remote,
    save,
    write_files,
)
from safetensors.numpy import load_file, save_file
from sqlalchemy import text

from modelscan.db.engine import open_store
from modelscan.db.query import run_sql
from modelscan.db.store import Store
from modelscan.errors import ConfigError, StoreError
from modelscan.hostinfo import host_table
from modelscan.lineage.infer import link
from modelscan.lineage.spread import JSON_KEYS, spread, top
from modelscan.lineage.subjects import resolve_subject
from modelscan.records import Fingerprint, LineageRef
from modelscan.scanner.fingerprint import fingerprint

# Downloads the world's listings report for the repos holding base's weights.
DOWNLOADS = {"org/base": 1000, "mirror/base": 10, "conv/base-bin": 5, "civitai:101": 50}


@pytest.fixture(scope="module")
def fps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Fingerprint]:
    """The world's files, written and fingerprinted once per module."""
    return write_files(tmp_path_factory.mktemp("world"))


@pytest.fixture
def world(store: Store, fps: dict[str, Fingerprint]) -> World:
    """The world in a fresh index, linked."""
    w = build(store, fps)
    link(store)
    return w


def measure(
    store: Store, subject: str, *, descendants: bool = False
) -> dict[str, object]:
    """The JSON measures of ``subject``."""
    subj = resolve_subject(store, subject)
    return spread(store, subj, descendants=descendants).to_json()


def test_spread_of_a_repo(store: Store, world: World) -> None:
    """Copies, derivatives, accounts, downloads, history, takedown cost and survival."""
    got = measure(store, "hf:org/base")
    assert tuple(got) == JSON_KEYS
    # growth by the hosts' dates: org/base (PUB0), mirror/base (+400 days, window
    # 13), civitai:101 (+500 days, window 16); conv/base-bin has no host date and
    # counts at its first sighting, T0 + 20 days = PUB0 + 692 days (window 23)
    dated = {0: "published_at", 13: "published_at", 16: "published_at"}
    dated[23] = "first_seen"
    windows = [
        {
            "start": (PUB0 + i * 30 * DAY).isoformat(),
            "added": 1 if i in dated else 0,
            "dated_by": {dated[i]: 1} if i in dated else {},
        }
        for i in range(24)
    ]
    assert got == {
        "exact_copies": 3,  # org/base, mirror/base, civitai:101
        "live_copies": 3,  # civitai:101 was taken down; conv/base-bin is live
        "content_copies": 1,  # conv/base-bin: the torch.save of the same tensors
        "derivatives": {"adapter": 1, "finetune": 2, "quantized": 1},
        "hosts": 2,
        "owners": 4,  # org, mirror, conv on the Hub; bob on Civitai
        "downloads": sum(DOWNLOADS.values()),
        "downloads_last_30_days": 1000 + 10 + 5,  # the Hub's repos only
        "downloads_all_time": 9000 + 50,  # org/base's downloadsAllTime, Civitai's
        "first_published_per_host": {
            "huggingface": PUB0.isoformat(),
            "civitai": (PUB0 + 500 * DAY).isoformat(),
        },
        "first_seen_per_host": {
            "huggingface": T0.isoformat(),
            "civitai": (T0 + 40 * DAY).isoformat(),
        },
        "added_per_30_days": windows,
        "growth_dated_by": {"published_at": 3, "first_seen": 1},
        "takedown_cost": 3,  # org, mirror, conv still hold a live copy
        "jurisdictions": {"US": 3},  # the live copies are all on the Hub
        "operators": {"Hugging Face, Inc.": 3},
        "survival": {"gone": 1, "survived": 1, "rate": 1.0},
    }


def test_spread_of_a_hash_equals_spread_of_its_repo(store: Store, world: World) -> None:
    """The sha256, its AutoV2 and the repo that holds it measure the same weights."""
    by_repo = measure(store, "hf:org/base")
    fp = world.fps["base"]
    assert measure(store, fp.sha256) == by_repo
    assert measure(store, fp.autov2.upper()) == by_repo


def test_spread_with_descendants_counts_their_copies(
    store: Store, world: World
) -> None:
    """--descendants adds every derivative's copies to live copies and takedown cost."""
    got = measure(store, "hf:org/base", descendants=True)
    # tuner/ft, liar/ft2, civitai:202 (carol's LoRA) hold files; q/base-gguf is a repo
    assert got["live_copies"] == 3 + 4
    assert got["takedown_cost"] == 3 + 4
    assert got["derivatives"] == {"adapter": 1, "finetune": 2, "quantized": 1}


def test_spread_of_a_local_file_not_in_the_index(
    store: Store, world: World, tmp_path: Path
) -> None:
    """A local re-save of the weights (other bytes) measures the copies of them."""
    path = tmp_path / "resaved.safetensors"
    save_file(load_file(world.fps["base"].path), str(path), metadata={"note": "mine"})
    fp = fingerprint(path)
    assert fp.sha256 != world.fps["base"].sha256
    subj = resolve_subject(store, str(path), fp=fp)
    got = spread(store, subj).to_json()
    counts = ("exact_copies", "content_copies", "live_copies", "takedown_cost")
    assert tuple(got[k] for k in counts) == (0, 4, 3, 3)


def test_timeline_steps_per_host(store: Store, world: World) -> None:
    """Live copies per host step up on the hosts' dates and down when they go."""
    subj = resolve_subject(store, "hf:org/base")
    timeline = spread(store, subj).timeline()
    assert timeline == {
        "civitai": [(PUB0 + 500 * DAY, 1), (T0 + 60 * DAY, 0)],
        # conv/base-bin has no host date: it steps up when first seen
        "huggingface": [(PUB0, 1), (PUB0 + 400 * DAY, 2), (T0 + 20 * DAY, 3)],
    }


def test_survival_needs_a_live_copy_elsewhere_at_that_moment(
    store: Store, fps: dict[str, Fingerprint]
) -> None:
    """A copy that went after every other one did counts as not survived."""
    fp = fps["other"]
    files = (remote(fp, "m.safetensors", "u"),)
    save(store, "civitai", [civitai(1, "a", files), civitai(2, "b", files)], T0)
    save(store, "civitai", [civitai(1, "a", files, status="taken_down")], T0 + DAY)
    save(store, "civitai", [civitai(2, "b", files, status="taken_down")], T0 + 2 * DAY)
    got = measure(store, fp.sha256)
    assert got["survival"] == {"gone": 2, "survived": 1, "rate": 0.5}
    assert (got["live_copies"], got["takedown_cost"]) == (0, 0)
    rows = store.execute(
        lambda c: c.execute(
            text("SELECT host_id, survived FROM spread_survival ORDER BY host_id")
        ).all()
    )
    assert [tuple(r) for r in rows] == [("1", 1), ("2", 0)]


def test_views_agree_with_the_library(store: Store, world: World) -> None:
    """spread_copies and spread_hosts give the same figures as `modelscan spread`."""
    got = measure(store, "hf:org/base")
    family = world.fps["base"].weights_id
    row = store.execute(
        lambda c: c.execute(
            text("SELECT * FROM spread_copies WHERE family = :f"), {"f": family}
        ).one()
    )
    assert row.copies == got["exact_copies"] + got["content_copies"]
    assert (
        row.live_copies,
        row.hosts,
        row.owners,
        row.takedown_cost,
        row.downloads,
    ) == (
        got["live_copies"],
        got["hosts"],
        got["owners"],
        got["takedown_cost"],
        got["downloads"],
    )
    assert (row.gone_copies, row.survived) == (1, 1)
    assert (row.jurisdictions, row.operators) == (
        len(got["jurisdictions"]),
        len(got["operators"]),
    )
    assert row.downloads_all_time == got["downloads_all_time"]
    assert (
        str(row.first_published)[:10]
        == got["first_published_per_host"]["huggingface"][:10]
    )
    hosts = store.execute(
        lambda c: c.execute(
            text(
                "SELECT host, live_copies, takedown_cost, country, operator "
                "FROM spread_hosts WHERE family = :f ORDER BY host"
            ),
            {"f": family},
        ).all()
    )
    assert [tuple(r) for r in hosts] == [
        ("civitai", 0, 0, "US", "Civitai, Inc."),
        ("huggingface", 3, 3, "US", "Hugging Face, Inc."),
    ]


def test_a_hosts_file_moves_a_host_to_another_jurisdiction(
    store: Store, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overriding the Hub's country counts it there, in the library and the views."""
    hosts = tmp_path / "hosts.toml"
    hosts.write_text('[huggingface]\noperator = "EU mirror"\ncountry = "fr"\n')
    monkeypatch.setenv("MODELSCAN_HOSTS_FILE", str(hosts))
    subj = resolve_subject(store, "hf:org/base")
    got = spread(store, subj, hosts=host_table()).to_json()
    assert got["jurisdictions"] == {"FR": 3}
    assert got["operators"] == {"EU mirror": 3}
    with open_store(f"sqlite:///{tmp_path / 'fresh.sqlite'}") as fresh:
        save(fresh, "huggingface", [hf("late/base", (remote(world.fps["base"], "m",
             "u"),))], T0)  # fmt: skip
        row = fresh.execute(
            lambda c: c.execute(
                text("SELECT country, operator FROM hosts WHERE name = 'huggingface'")
            ).one()
        )
    assert tuple(row) == ("FR", "EU mirror")  # written with each saved page


def test_a_bad_hosts_file_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A malformed or wrong hosts file names the file and the problem."""
    hosts = tmp_path / "hosts.toml"
    monkeypatch.setenv("MODELSCAN_HOSTS_FILE", str(hosts))
    with pytest.raises(ConfigError, match="no such hosts file"):
        host_table()
    hosts.write_text("[huggingface]\ncountry = 3\n")
    with pytest.raises(ConfigError, match=r"\[huggingface\] country must be a string"):
        host_table()
    hosts.write_text("[huggingface\n")
    with pytest.raises(ConfigError, match="hosts.toml"):
        host_table()


def test_views_answer_through_modelscan_sql(
    store: Store, world: World, db_url: str
) -> None:
    """The views run on the read-only connection `modelscan sql` uses."""
    result = run_sql(
        db_url,
        "SELECT relation, children FROM spread_derivatives "
        "WHERE host_id = 'org/base' ORDER BY relation",
    )
    assert [tuple(r) for r in result.rows] == [
        ("adapter", 1),
        ("conversion", 1),
        ("finetune", 2),
        ("quantized", 1),
    ]
    result = run_sql(
        db_url,
        "SELECT child, parent, relation, source FROM lineage_edges "
        "WHERE child = 'tuner/ft' ORDER BY source",
    )
    assert [tuple(r) for r in result.rows] == [
        ("tuner/ft", "org/base", "finetune", "declared-card"),
        ("tuner/ft", "org/base", "finetune", "weight-similarity"),
    ]


def test_top_ranks_families(store: Store, world: World) -> None:
    """--top ranks weights families; each is named by the repo it was first seen in."""
    rows = top(store, 2, by="takedown-cost")
    assert [(r.label, r.family.takedown_cost, r.family.live_copies) for r in rows][
        0
    ] == (
        "hf:org/base",
        3,
        3,
    )
    assert rows[0].sha256 == world.fps["base"].sha256
    assert rows[1].family.takedown_cost == 1
    with pytest.raises(StoreError, match="cannot rank by 'stars'"):
        top(store, 2, by="stars")


def test_a_declared_parent_not_crawled_has_derivatives(store: Store) -> None:
    """A base known only from cards that name it still counts its derivatives."""
    ref = LineageRef("hf:big/base", "adapter", "declared-tag")
    save(
        store,
        "huggingface",
        [hf("a/lora", declares=(ref,)), hf("b/lora", declares=(ref,))],
        T0,
    )
    got = measure(store, "hf:big/base")
    assert (got["derivatives"], got["exact_copies"], got["takedown_cost"]) == (
        {"adapter": 2},
        0,
        0,
    )
    with pytest.raises(
        StoreError, match="nothing in the index holds or derives from it"
    ):
        measure(store, "hf:nobody/knows")
