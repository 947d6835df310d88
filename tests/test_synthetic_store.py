"""Zarr v3 synthetic sets: round trip, provenance, plain-zarr reading, refusal of bad sets, mixing."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import zarr

from medaug.data.imageset import ImageSet, content_hash
from medaug.errors import MedaugError
from medaug.store import synthetic as syn
from medaug.store.synthetic import mix_into_train, parse_ref, read_synthetic_set, write_synthetic_set

CLASSES = ("malignant", "normal, benign")


def make_train(n: int = 12, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(name="breastmnist", split="train", images=rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8),
                    labels=(np.arange(n) % 2).astype(np.int64), class_names=CLASSES, task="binary-class")


def provenance(train: ImageSet, **changes) -> dict:
    prov = {"generator": "class-mean-noise", "generator_config": {"epochs": 1}, "checkpoint_hash": "abc123",
            "train_hash": train.content_hash, "dataset": train.name, "dataset_version": "medmnist-3.0.2",
            "dataset_md5": "0" * 32, "class_names": list(train.class_names), "task": train.task,
            "strategy": "per-class", "strategy_params": {"classes": ["malignant"], "count": 5}, "seed": 7}
    prov.update(changes)
    return prov


def synth(n: int = 5, seed: int = 1, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, channels, 28, 28), dtype=np.uint8), np.zeros(n, dtype=np.int64)


def test_round_trip_and_provenance(tmp_path):
    train = make_train()
    images, labels = synth()
    store = tmp_path / "sets.zarr"
    set_id = write_synthetic_set(store, "a", images, labels, provenance(train))
    assert set_id == content_hash(images, labels)
    s = read_synthetic_set(f"{store}#a")
    np.testing.assert_array_equal(s.images, images)
    np.testing.assert_array_equal(s.labels, labels)
    assert s.set_id == set_id and s.attrs["complete"] is True and s.attrs["n"] == 5
    assert s.provenance["train_hash"] == train.content_hash and s.provenance["seed"] == 7
    assert s.provenance["medaug_version"] and s.provenance["created_at"].endswith("+00:00")
    assert s.to_imageset().class_names == CLASSES
    # compressed, chunked by whole images, no leftover temporaries
    arr = zarr.open_group(str(store), mode="r")["a"]["images"]
    assert arr.chunks[1:] == (1, 28, 28) and arr.compressors
    assert syn.list_groups(store) == ["a"]
    assert not [p for p in store.iterdir() if p.name.startswith(".tmp-")]


def test_plain_zarr_reads_a_set_without_medaug(tmp_path):
    train = make_train()
    images, labels = synth(n=7)
    store = tmp_path / "sets.zarr"
    write_synthetic_set(store, "g1", images, labels, provenance(train))
    np.save(tmp_path / "expected.npy", images)
    code = (
        "import sys, json; sys.modules['medaug'] = None\n"  # any medaug import would fail
        "import numpy as np, zarr\n"
        f"g = zarr.open_group({str(store)!r}, mode='r')['g1']\n"
        "imgs = g['images'][:]; labs = g['labels'][:]\n"
        f"assert (imgs == np.load({str(tmp_path / 'expected.npy')!r})).all()\n"
        "print(json.dumps({'shape': list(imgs.shape), 'dtype': str(imgs.dtype), 'labels': labs.tolist(),\n"
        "                  'complete': g.attrs['complete'], 'train_hash': g.attrs['provenance']['train_hash']}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got == {"shape": [7, 1, 28, 28], "dtype": "uint8", "labels": [0] * 7, "complete": True,
                   "train_hash": train.content_hash}


def test_incomplete_group_refused(tmp_path):
    train = make_train()
    store = tmp_path / "sets.zarr"
    write_synthetic_set(store, "a", *synth(), provenance(train))
    g = zarr.open_group(str(store), mode="r+")["a"]
    attrs = dict(g.attrs)
    del attrs["complete"]
    g.attrs.put(attrs)  # as a writer that crashed before its last step leaves it
    with pytest.raises(MedaugError, match="incomplete"):
        read_synthetic_set(f"{store}#a")
    with pytest.raises(MedaugError, match="incomplete"):
        mix_into_train(train, f"{store}#a")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    train = make_train()
    store = tmp_path / "sets.zarr"

    def crash(store_path, name, data, prov, set_id):
        zarr.open_group(str(store_path), mode="a").create_group(name)
        raise OSError("disk full")

    monkeypatch.setattr(syn, "_write_group", crash)
    with pytest.raises(OSError):
        write_synthetic_set(store, "a", *synth(), provenance(train))
    assert not store.exists()  # the write created the store; a failure leaves none behind

    monkeypatch.undo()
    write_synthetic_set(store, "first", *synth(), provenance(train))  # an existing store keeps its sets
    monkeypatch.setattr(syn, "_write_group", crash)
    with pytest.raises(OSError):
        write_synthetic_set(store, "a", *synth(), provenance(train))
    assert not (store / "a").exists()
    assert sorted(p.name for p in store.iterdir()) == ["first", "zarr.json"]


def test_existing_group_and_bad_input_refused(tmp_path):
    train = make_train()
    store = tmp_path / "sets.zarr"
    images, labels = synth()
    write_synthetic_set(store, "a", images, labels, provenance(train))
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    with pytest.raises(MedaugError, match="exists already"):
        write_synthetic_set(store, "a", images, labels, provenance(train))
    with pytest.raises(MedaugError, match="lacks"):
        write_synthetic_set(store, "b", images, labels, {"generator": "x"})
    with pytest.raises(MedaugError, match="uint8"):
        write_synthetic_set(store, "b", images.astype(np.float32), labels, provenance(train))
    with pytest.raises(MedaugError, match="out of range"):
        write_synthetic_set(store, "b", images, labels + 5, provenance(train))
    with pytest.raises(MedaugError, match="group name"):
        write_synthetic_set(store, "../evil", images, labels, provenance(train))
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before


@pytest.mark.parametrize("ref", ["nohash.zarr", "a#b#c", "#g", "s.zarr#"])
def test_malformed_refs(ref):
    with pytest.raises(MedaugError, match="STORE.zarr#GROUP"):
        parse_ref(ref)


def test_missing_store_and_group(tmp_path):
    with pytest.raises(MedaugError, match="no Zarr v3 store"):
        read_synthetic_set(f"{tmp_path / 'none.zarr'}#a")
    store = tmp_path / "sets.zarr"
    write_synthetic_set(store, "a", *synth(), provenance(make_train()))
    with pytest.raises(MedaugError, match="it holds: a"):
        read_synthetic_set(f"{store}#b")


def test_corrupt_chunks_refused(tmp_path):
    train = make_train()
    store = tmp_path / "sets.zarr"
    write_synthetic_set(store, "a", *synth(n=40), provenance(train))
    chunk = next(p for p in (store / "a" / "images" / "c").rglob("*") if p.is_file())
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(MedaugError, match="corrupt"):
        read_synthetic_set(f"{store}#a")
    chunk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(MedaugError, match="corrupt"):
        mix_into_train(train, f"{store}#a")
    (store / "a" / "zarr.json").write_text("{ not json")
    with pytest.raises(MedaugError):
        read_synthetic_set(f"{store}#a")


def test_changed_content_refused_by_hash(tmp_path):
    train = make_train()
    store = tmp_path / "sets.zarr"
    write_synthetic_set(store, "a", *synth(), provenance(train))
    labels = zarr.open_group(str(store), mode="r+")["a"]["labels"]
    labels[0] = 1  # a valid write that changes the content: no longer the set that was recorded
    with pytest.raises(MedaugError, match="content hash"):
        read_synthetic_set(f"{store}#a")


def test_mix_into_train(tmp_path):
    train = make_train()
    images, labels = synth(n=5)
    store = tmp_path / "sets.zarr"
    set_id = write_synthetic_set(store, "a", images, labels, provenance(train))
    mixed, info = mix_into_train(train, f"{store}#a")
    assert mixed.split == "train+synthetic" and len(mixed) == len(train) + 5
    np.testing.assert_array_equal(mixed.images[:len(train)], train.images)
    np.testing.assert_array_equal(mixed.images[len(train):], images)
    np.testing.assert_array_equal(mixed.labels, np.concatenate([train.labels, labels]))
    assert info["set_id"] == set_id and info["n_synthetic"] == 5 and info["ref"] == f"{store}#a"
    assert info["provenance"]["generator"] == "class-mean-noise"
    assert json.loads(info["provenance_json"]) == info["provenance"]


def test_mix_interleaves_reconstructions(tmp_path):
    train = make_train(n=4)
    recon = 255 - train.images
    store = tmp_path / "sets.zarr"
    write_synthetic_set(store, "r", recon, train.labels, provenance(train, strategy="interleave-reconstructions",
                                                                    strategy_params={}))
    mixed, info = mix_into_train(train, f"{store}#r")
    assert len(mixed) == 8 and info["n_synthetic"] == 4
    for i in range(4):
        np.testing.assert_array_equal(mixed.images[2 * i], train.images[i])
        np.testing.assert_array_equal(mixed.images[2 * i + 1], recon[i])
    assert mixed.labels.tolist() == np.repeat(train.labels, 2).tolist()


def test_leakage_and_mismatch_refused(tmp_path):
    train = make_train()
    other_split = make_train(seed=5)  # e.g. a set whose generator saw val or test images
    store = tmp_path / "sets.zarr"
    images, labels = synth()
    write_synthetic_set(store, "leak", images, labels, provenance(train, train_hash=other_split.content_hash))
    with pytest.raises(MedaugError, match="leakage"):
        mix_into_train(train, f"{store}#leak")
    write_synthetic_set(store, "other", images, labels, provenance(train, dataset="pneumoniamnist"))
    with pytest.raises(MedaugError, match="pneumoniamnist"):
        mix_into_train(train, f"{store}#other")
    write_synthetic_set(store, "rgb", *synth(channels=3), provenance(train))
    with pytest.raises(MedaugError, match=r"\(C, H, W\)"):
        mix_into_train(train, f"{store}#rgb")
    write_synthetic_set(store, "classes", images, labels, provenance(train, class_names=["a", "b"]))
    with pytest.raises(MedaugError, match="classes"):
        mix_into_train(train, f"{store}#classes")
    with pytest.raises(MedaugError, match="train split only"):
        mix_into_train(train.subset(np.arange(4), split="val"), f"{store}#classes")
