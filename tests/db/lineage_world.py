"""A small world of real model files and listings for the link/lineage/spread tests.

Files are real safetensors (and one torch.save) written by the real libraries and
fingerprinted by the real scanner; listings go through the real Store API:

- ``base`` (org/base on Hugging Face, first) is re-uploaded to mirror/base and to
  civitai:101 (owner bob); civitai:101 is taken down on the second visit;
- ``bin``: the same tensors re-saved with torch.save (same content_id) in conv/base-bin;
- ``ft``: base plus small noise in tuner/ft, whose card declares org/base;
- ``ft2``: base plus other noise in liar/ft2, whose card declares other/unrelated;
- ``other``: unrelated weights of the same shapes in other/unrelated;
- ``fresh``: more unrelated weights in liar2/fresh, card declaring other/unrelated;
- ``lora``: a kohya LoRA on civitai:202 (owner carol) naming base's sha256 and AutoV1;
- q/base-gguf declares itself a quantization of org/base (card only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from modelscan.db.store import Store
from modelscan.records import Fingerprint, LineageRef, Listing, RemoteFile
from modelscan.scanner.fingerprint import fingerprint

T0 = datetime(2025, 1, 1, tzinfo=UTC)
# the hosts' own dates: org/base was published long before this index saw it
PUB0 = datetime(2023, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)
LAYERS = 4


def base_tensors(seed: int) -> dict[str, np.ndarray]:
    """Deterministic weights shaped like a tiny transformer (about 1.3 MB)."""
    rng = np.random.default_rng(seed)
    out = {"embed.weight": rng.standard_normal((1000, 64)).astype(np.float32)}
    for i in range(LAYERS):
        out[f"layers.{i}.q.weight"] = rng.standard_normal((256, 256)).astype(np.float32)
        out[f"layers.{i}.norm.weight"] = np.ones(256, dtype=np.float32)
    return out


def noisy(
    tensors: dict[str, np.ndarray], seed: int, scale: float
) -> dict[str, np.ndarray]:
    """A "fine-tune": every matrix plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    return {
        k: (v + scale * rng.standard_normal(v.shape)).astype(np.float32)
        if v.ndim > 1
        else v
        for k, v in tensors.items()
    }


def write_files(root: Path) -> dict[str, Fingerprint]:
    """Write and fingerprint every file of the world."""
    import torch

    root.mkdir(parents=True, exist_ok=True)
    base = base_tensors(1)
    files = {
        "base": ("base.safetensors", base),
        "ft": ("ft.safetensors", noisy(base, 10, 0.05)),
        "ft2": ("ft2.safetensors", noisy(base, 11, 0.05)),
        "other": ("other.safetensors", base_tensors(2)),
        "fresh": ("fresh.safetensors", base_tensors(3)),
    }
    for name, tensors in files.values():
        save_file(tensors, str(root / name))
    torch.save({k: torch.from_numpy(v) for k, v in base.items()}, root / "base.bin")
    out = {key: fingerprint(root / name) for key, (name, _) in files.items()}
    out["bin"] = fingerprint(root / "base.bin")
    b = out["base"]
    lora = {
        "lora_unet_q.lora_down.weight": np.ones((8, 256), dtype=np.float32),
        "lora_unet_q.lora_up.weight": np.ones((256, 8), dtype=np.float32),
    }
    meta = {
        "ss_network_module": "networks.lora",
        "ss_new_sd_model_hash": b.sha256,
        "ss_sd_model_hash": b.autov1,
    }
    save_file(lora, str(root / "lora.safetensors"), metadata=meta)
    out["lora"] = fingerprint(root / "lora.safetensors")
    return out


def remote(
    fp: Fingerprint, name: str, url: str, published: datetime | None = None
) -> RemoteFile:
    """The file as a host lists it: the host publishes its sha256, size and date."""
    return RemoteFile(
        path=name,
        size=fp.size,
        sha256=fp.sha256,
        url=f"{url}/{name}",
        published_at=published,
    )


def hf(
    repo: str,
    files: tuple[RemoteFile, ...] = (),
    *,
    downloads: int = 0,
    declares: tuple[LineageRef, ...] = (),
    status: str = "live",
    all_time: int | None = None,
) -> Listing:
    """A Hugging Face listing."""
    owner, name = repo.split("/")
    url = f"https://huggingface.co/{repo}"
    return Listing(
        host="huggingface",
        host_id=repo,
        name=name,
        owner=owner,
        url=url,
        revision="r1",
        updated_at=None,
        status=status,
        downloads=downloads,
        files=files,
        lineage=declares,
        downloads_all_time=all_time,
    )


def civitai(
    model_id: int,
    owner: str,
    files: tuple[RemoteFile, ...],
    *,
    downloads: int = 0,
    status: str = "live",
) -> Listing:
    """A Civitai listing (one version)."""
    url = f"https://civitai.com/models/{model_id}"
    return Listing(
        host="civitai",
        host_id=str(model_id),
        name=f"m{model_id}",
        owner=owner,
        url=url,
        revision=f"{model_id}0",
        updated_at=None,
        status=status,
        downloads=downloads,
        files=files,
        downloads_all_time=downloads,  # Civitai's downloadCount is all-time
    )


def save(store: Store, host: str, listings: list[Listing], at: datetime) -> None:
    """Save one page of ``host`` as a crawl run would."""
    run = store.start_run(host, params={})
    store.save_page(run, host, listings, next_cursor=None, seen_at=at)
    store.finish_run(run, status="ok", stats={})


@dataclass
class World:
    """What the tests need to know about the world they built."""

    fps: dict[str, Fingerprint]
    sha: dict[str, str] = field(default_factory=dict)


def build(
    store: Store, fps: dict[str, Fingerprint], *, take_down: bool = True
) -> World:
    """Fill ``store`` with the world: local fingerprints, then two visits."""
    for fp in fps.values():
        store.save_fingerprint(fp, location=fp.path, seen_at=T0)
    b = fps["base"]
    sf = "model.safetensors"
    finetune = (LineageRef("hf:org/base", "finetune", "declared-card"),)
    liar = (LineageRef("hf:other/unrelated", "finetune", "declared-card"),)
    save(
        store,
        "huggingface",
        [hf("org/base", (remote(b, sf, "u", PUB0),), downloads=1000, all_time=9000)],
        T0,
    )
    save(
        store,
        "huggingface",
        [hf("other/unrelated", (remote(fps["other"], sf, "u"),))],
        T0 + 5 * DAY,
    )
    save(
        store,
        "huggingface",
        [hf("mirror/base", (remote(b, sf, "u", PUB0 + 400 * DAY),), downloads=10)],
        T0 + 10 * DAY,
    )
    save(
        store,
        "huggingface",
        [
            hf(
                "conv/base-bin",
                (remote(fps["bin"], "pytorch_model.bin", "u"),),
                downloads=5,
            )
        ],
        T0 + 20 * DAY,
    )
    save(
        store,
        "huggingface",
        [
            hf(
                "tuner/ft",
                (remote(fps["ft"], sf, "u"),),
                downloads=7,
                declares=finetune,
            ),
            hf("liar/ft2", (remote(fps["ft2"], sf, "u"),), declares=liar),
            hf("liar2/fresh", (remote(fps["fresh"], sf, "u"),), declares=liar),
            hf(
                "q/base-gguf",
                (),
                declares=(LineageRef("hf:org/base", "quantized", "declared-card"),),
            ),
        ],
        T0 + 30 * DAY,
    )
    save(
        store,
        "civitai",
        [
            civitai(
                101,
                "bob",
                (remote(b, "base.safetensors", "u", PUB0 + 500 * DAY),),
                downloads=50,
            ),
            civitai(202, "carol", (remote(fps["lora"], "lora.safetensors", "u"),)),
        ],
        T0 + 40 * DAY,
    )
    if take_down:
        save(
            store,
            "civitai",
            [
                civitai(
                    101,
                    "bob",
                    (remote(b, "base.safetensors", "u"),),
                    downloads=50,
                    status="taken_down",
                )
            ],
            T0 + 60 * DAY,
        )
    return World(fps, {k: fp.sha256 for k, fp in fps.items()})
