"""Rebuild tests/data/hosts/ from the recorded responses in ../shared/fixtures/.

Manual tool, never run by the tests: ``python tests/data/hosts/trim_fixtures.py
/path/to/shared/fixtures``. It copies the recordings the registry tests replay,
trimmed to what the crawler reads (no images, widget data, OpenAPI schemas), and
writes the few files that no recording covers, each derived from a real record
and listed in README.md. Every derived value is marked in this file.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent
HF_KEEP = ("_id", "id", "modelId", "author", "sha", "lastModified", "createdAt",
           "private", "gated", "disabled", "pipeline_tag", "library_name", "tags",
           "downloads", "likes", "cardData", "siblings")  # fmt: skip
CARD_KEEP = ("license", "base_model", "base_model_relation", "tags", "datasets",
             "language", "pipeline_tag", "library_name")  # fmt: skip
CIVITAI_CURSOR_2 = "1102|0|1102"  # derived: the recorded page 2 has no next cursor


def write(rel: str, data: Any) -> None:
    path = OUT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str | bytes):
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    else:
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def trim_hf(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: record[k] for k in HF_KEEP if k in record}
    if isinstance(out.get("cardData"), dict):
        out["cardData"] = {k: v for k, v in out["cardData"].items() if k in CARD_KEEP}
    return out


def huggingface(src: Path) -> None:
    def load(name: str) -> dict[str, Any]:
        return trim_hf(json.loads((src / f"hfhub_model_info__{name}").read_text()))

    models = "huggingface/api/models"
    for name, repo in [
        ("HuggingFaceH4_zephyr-7b-beta.200.json", "HuggingFaceH4/zephyr-7b-beta"),
        ("deepset_roberta-base-squad2.200.json", "deepset/roberta-base-squad2"),
        ("meta-llama_Llama-3.1-8B-Instruct.200.json",
         "meta-llama/Llama-3.1-8B-Instruct"),
        ("mcpotato_42-eicar-street.revision-8b3861f.blobs-true.200.json",
         "mcpotato/42-eicar-street"),
        ("HuggingFaceH4_zephyr-orpo-141b-A35b-v0.1.200.json",
         "HuggingFaceH4/zephyr-orpo-141b-A35b-v0.1"),
        ("sentence-transformers_all-MiniLM-L6-v2.200.json",
         "sentence-transformers/all-MiniLM-L6-v2"),
    ]:  # fmt: skip
        write(f"{models}/{repo}.json", load(name))
    # Second visit. DERIVED: zephyr gets a new commit with one more file.
    zephyr = load("HuggingFaceH4_zephyr-7b-beta.200.json")
    zephyr["sha"] = hashlib.sha1(
        b"modelscan-tests visit1 " + zephyr["sha"].encode()
    ).hexdigest()
    zephyr["lastModified"] = "2025-01-10T09:00:00.000Z"
    zephyr["siblings"].append({"rfilename": "zephyr-7b-beta.Q4_K_M.gguf"})
    write(f"{models}/HuggingFaceH4/zephyr-7b-beta_visit1.json", zephyr)
    # DERIVED: roberta deleted (404 as the Hub answers a missing repo).
    write(
        f"{models}/deepset/roberta-base-squad2_visit1.json",
        {"error": "Repository not found"},
    )
    write(
        f"{models}/deepset/roberta-base-squad2_visit1.meta.json",
        {"status": 404, "headers": {"X-Error-Code": "RepoNotFound"}},
    )
    # DERIVED: the gated Llama repo disabled.
    llama = load("meta-llama_Llama-3.1-8B-Instruct.200.json")
    llama["disabled"] = True
    write(f"{models}/meta-llama/Llama-3.1-8B-Instruct_visit1.json", llama)
    # Rename: the legacy id first (DERIVED from the google-bert record, id changed),
    # then the REAL 307 recording, and the real record under its new name.
    legacy = load("google-bert_bert-base-uncased.200.json")
    legacy["id"] = legacy["modelId"] = "bert-base-uncased"
    write(f"{models}/bert-base-uncased.json", legacy)
    write(
        f"{models}/bert-base-uncased_visit1.txt",
        (src / "hfhub_model_info__bert-base-uncased.307.txt").read_text(),
    )
    write(
        f"{models}/bert-base-uncased_visit1.meta.json",
        {
            "status": 307,
            "headers": {
                "Location": "/api/models/google-bert/bert-base-uncased",
                "Content-Type": "text/plain; charset=utf-8",
            },
        },
    )
    write(
        f"{models}/google-bert/bert-base-uncased.json",
        {"error": "Repository not found"},
    )
    write(
        f"{models}/google-bert/bert-base-uncased.meta.json",
        {"status": 404, "headers": {"X-Error-Code": "RepoNotFound"}},
    )
    write(
        f"{models}/google-bert/bert-base-uncased_visit1.json",
        load("google-bert_bert-base-uncased.200.json"),
    )
    # SYNTHETIC: a PEFT adapter repo (no recording has adapter_config.json).
    lora_sha = hashlib.sha1(b"modelscan-tests zephyr-7b-lora").hexdigest()
    write(f"{models}/modelscan-tests/zephyr-7b-lora.json", {
        "_id": "000000000000000000000001", "id": "modelscan-tests/zephyr-7b-lora",
        "modelId": "modelscan-tests/zephyr-7b-lora", "author": "modelscan-tests",
        "sha": lora_sha, "lastModified": "2024-11-02T10:00:00.000Z",
        "createdAt": "2024-11-01T10:00:00.000Z", "private": False, "gated": False,
        "disabled": False, "library_name": "peft", "downloads": 3, "likes": 0,
        "tags": ["peft", "safetensors", "base_model:HuggingFaceH4/zephyr-7b-beta",
                 "base_model:adapter:HuggingFaceH4/zephyr-7b-beta", "license:mit"],
        "cardData": {"base_model": "HuggingFaceH4/zephyr-7b-beta",
                     "library_name": "peft"},
        "siblings": [{"rfilename": ".gitattributes"}, {"rfilename": "README.md"},
                     {"rfilename": "adapter_config.json"},
                     {"rfilename": "adapter_model.safetensors"}],
    })  # fmt: skip
    write(
        f"huggingface/modelscan-tests/zephyr-7b-lora/resolve/{lora_sha}/adapter_config.json",
        {
            "base_model_name_or_path": "HuggingFaceH4/zephyr-7b-beta",
            "peft_type": "LORA",
            "r": 8,
            "lora_alpha": 16,
            "target_modules": ["q_proj", "v_proj"],
        },
    )
    # REAL tree listing (values transcribed by huggingface.js tests), for parse tests.
    tree_name = "hfhub_tree__bert-base-uncased.rev-dd4bc8b.expand-true.200.json"
    tree = json.loads((src / tree_name)
                      .read_text())  # fmt: skip
    write(
        f"{models}/bert-base-uncased/tree/dd4bc8b21efa05ec961e3efc4ee5e3832a3679c7.json",
        tree,
    )


def trim_civitai_model(item: dict[str, Any], versions: int = 3) -> dict[str, Any]:
    item = dict(item)
    if isinstance(item.get("description"), str):
        item["description"] = item["description"][:300]
    item["modelVersions"] = [
        {k: v for k, v in mv.items() if k not in ("images", "description")}
        for mv in item.get("modelVersions", [])[:versions]
    ]
    return item


def civitai(src: Path) -> None:
    page1 = json.loads(
        (src / ("civitai_v1_models.limit-10.sort-HighestRated.types-Checkpoint"
                ".real-2024-05.json"))
        .read_text())  # fmt: skip
    first = {"items": [trim_civitai_model(i) for i in page1["items"][:4]],
             "metadata": page1["metadata"]}  # fmt: skip
    write("civitai/api/v1/models.json", first)
    cursor1 = page1["metadata"]["nextCursor"]
    sample = json.loads(
        (src / "civitai_v1_models_1580878.real-sample.json").read_text()
    )
    wiki = json.loads((src / "civitai_v1_models_1102.wiki-example.json").read_text())
    # DERIVED metadata: the two single-model records made into a second page.
    second = {
        "items": [trim_civitai_model(sample), trim_civitai_model(wiki)],
        "metadata": {
            "nextCursor": CIVITAI_CURSOR_2,
            "currentPage": 2,
            "pageSize": 4,
            "nextPage": "https://civitai.com/api/v1/models?cursor=1102%7C0%7C1102",
        },
    }
    write(f"civitai/api/v1/models,cursor={cursor1}.json", second)
    write(
        f"civitai/api/v1/models,cursor={CIVITAI_CURSOR_2}.json",
        {"items": [], "metadata": {}},
    )
    write("civitai/api/v1/models/1102.json", trim_civitai_model(wiki))
    # Second visit. DERIVED: 43331 taken down, 4468 archived (files[] emptied as the
    # server does, see civitai_error_bodies.from-source.md), a new version of 4384.
    v1 = json.loads(json.dumps(first))
    v1["items"][0]["mode"] = "TakenDown"
    v1["items"][2]["mode"] = "Archived"
    for mv in v1["items"][2]["modelVersions"]:
        mv["files"] = []
    dream = v1["items"][1]
    new = json.loads(json.dumps(dream["modelVersions"][0]))
    new.update(
        id=999001, name="9 (modelscan-tests)", publishedAt="2025-01-10T09:00:00.000"
    )
    new["files"] = new["files"][:1]
    new["files"][0].update(
        id=999002,
        name="dreamshaper_9.safetensors",
        hashes={
            "SHA256": hashlib.sha256(b"modelscan-tests dreamshaper_9")
            .hexdigest()
            .upper()
        },
    )
    dream["modelVersions"].insert(0, new)
    write("civitai/api/v1/models_visit1.json", v1)
    second1 = json.loads(json.dumps(second))
    second1["items"] = second1["items"][:1]  # 1102 no longer listed...
    write(f"civitai/api/v1/models,cursor={cursor1}_visit1.json", second1)
    write("civitai/api/v1/models/1102_visit1.json", {"error": "Model not found"})
    write("civitai/api/v1/models/1102_visit1.meta.json", {"status": 404})  # ...and gone


def trim_replicate(item: dict[str, Any]) -> dict[str, Any]:
    item = {k: v for k, v in item.items() if k != "default_example"}
    if isinstance(item.get("latest_version"), dict):
        item["latest_version"] = {k: v for k, v in item["latest_version"].items()
                                  if k != "openapi_schema"}  # fmt: skip
    return item


def replicate(src: Path) -> None:
    listed = json.loads(
        (src / "replicate_models-list__1__GET_v1_models.200.json").read_text()
    )
    first = {
        "next": listed["next"],
        "previous": None,
        "results": [trim_replicate(r) for r in listed["results"][:5]],
    }
    write("replicate/v1/models.json", first)
    cursor = listed["next"].split("cursor=", 1)[1]
    found = json.loads(
        (src / "replicate_models-search__1__QUERY_v1_models.200.json").read_text()
    )
    keep = {
        "lucataco/llama-2-7b-chat",
        "tomasmcm/llamaguard-7b",
        "meta/meta-llama-guard-2-8b",
    }
    sdxl = json.loads((src / "replicate_models-get__1__GET_v1_models_stability-ai_sdxl"
                               ".200.json")
                      .read_text())  # fmt: skip
    # DERIVED page: search results and one model record made into the last list page.
    second = {
        "next": None,
        "previous": listed["next"].split("?")[0],
        "results": [
            trim_replicate(r)
            for r in found["results"]
            if f"{r['owner']}/{r['name']}" in keep
        ]
        + [trim_replicate(sdxl)],
    }
    write(f"replicate/v1/models,cursor={cursor}.json", second)
    versions = json.loads(
        (src / ("replicate_models-versions-list__1__GET_v1_models_stability-ai_sdxl"
                "_versions.200.json"))
        .read_text())  # fmt: skip
    versions["results"] = [{k: v for k, v in r.items() if k != "openapi_schema"}
                           for r in versions["results"]]  # fmt: skip
    write("replicate/v1/models/stability-ai/sdxl/versions.json", versions)
    write("replicate/v1/models/stability-ai/sdxl.json", trim_replicate(sdxl))
    write(
        "replicate/v1/models/mattt/empty.json",
        json.loads(
            (
                src / "replicate_models-get__2__GET_v1_models_mattt_empty.200.json"
            ).read_text()
        ),
    )
    write(
        "replicate/unauthenticated.401.json",
        json.loads(
            (
                src / "replicate_run__invalid-token__1__POST_v1_predictions.401.json"
            ).read_text()
        ),
    )
    # Second visit. DERIVED: a new version of fofr/latent-consistency-model; the
    # sdxl record dropped from the listing and answering 404.
    v1 = json.loads(json.dumps(first))
    lcm = next(r for r in v1["results"] if r["name"] == "latent-consistency-model")
    lcm["latest_version"]["id"] = hashlib.sha256(b"modelscan-tests lcm v2").hexdigest()
    lcm["latest_version"]["created_at"] = "2025-01-10T09:00:00.000000Z"
    write("replicate/v1/models_visit1.json", v1)
    second1 = json.loads(json.dumps(second))
    second1["results"] = second1["results"][:-1]
    write(f"replicate/v1/models,cursor={cursor}_visit1.json", second1)
    write(
        "replicate/v1/models/stability-ai/sdxl_visit1.json",
        {"detail": "Not found.", "status": 404},
    )
    write("replicate/v1/models/stability-ai/sdxl_visit1.meta.json", {"status": 404})


if __name__ == "__main__":
    shared = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/fixtures")
    huggingface(shared / "huggingface")
    civitai(shared / "civitai")
    replicate(shared / "replicate")
