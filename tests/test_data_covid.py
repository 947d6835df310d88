"""COVID-19 Radiography loader (seed 003) on a tiny generated copy of the published layout."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medaug.data import covid
from medaug.data.covid import load_covid, lung_crop, mask_bbox
from medaug.errors import MedaugError

IMG, MASK = 40, 20  # the real data: 299 px images, 256 px masks (the scale is not an integer either way)
#: The COVID image whose mask is the known rectangle (mask rows 3..10, cols 5..12 -> image rows 6..21, cols 10..25).
KNOWN = "COVID/images/COVID-1.png"
KNOWN_BOX = (10, 6, 26, 22)  # (left, top, right, bottom), right/bottom exclusive


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def make_covid_tree(root: Path, counts: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Write COVID-19_Radiography_Dataset/<Class>/{images,masks}/<Class>-<n>.png under `root`.

    COVID-3 has no mask file, Normal-2 an all-zero mask; COVID-1's mask is KNOWN_BOX.
    """
    counts = counts or {"COVID": 6, "Normal": 6, "Lung_Opacity": 3, "Viral Pneumonia": 3}
    rng = np.random.default_rng(seed)
    base = root / covid.DATASET_DIR
    for cls, n in counts.items():
        for i in range(1, n + 1):
            name = f"{cls}-{i}.png"
            _png(base / cls / "images" / name, rng.integers(0, 256, (IMG, IMG), dtype=np.uint8))
            if cls == "COVID" and i == 3:
                continue
            mask = np.zeros((MASK, MASK), np.uint8)
            if cls == "COVID" and i == 1:
                mask[3:11, 5:13] = 255
            elif not (cls == "Normal" and i == 2):
                t, l = rng.integers(0, 8, 2)
                mask[t:t + rng.integers(4, 12), l:l + rng.integers(4, 12)] = 255
            _png(base / cls / "masks" / name, mask)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_covid_tree(tmp_path / "raw")


def _load(root: Path, **kw):
    kw.setdefault("test_per_class", 2)
    kw.setdefault("val_fraction", 0.25)
    kw.setdefault("cache_dir", root.parent / "cache")
    kw.setdefault("workers", 2)
    return load_covid(root, **kw)


def test_crop_is_the_mask_bounding_box_exactly() -> None:
    rng = np.random.default_rng(1)
    src = rng.integers(0, 256, (IMG, IMG), dtype=np.uint8)
    mask = np.zeros((MASK, MASK), np.uint8)
    mask[3:11, 5:13] = 255
    image, mask_img = Image.fromarray(src), Image.fromarray(mask)
    assert mask_bbox(mask_img, image.size) == KNOWN_BOX
    # a 16 px crop resized to 16 px is the source region itself, pixel for pixel
    np.testing.assert_array_equal(lung_crop(image, mask_img, 16), src[6:22, 10:26])
    # any other size: the same region resized (and nothing from outside the box)
    expected = np.asarray(Image.fromarray(src[6:22, 10:26]).resize((24, 24), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(lung_crop(image, mask_img, 24), expected)
    flat = np.full((IMG, IMG), 7, np.uint8)
    flat[6:22, 10:26] = 200
    assert (lung_crop(Image.fromarray(flat), mask_img, 24) == 200).all()


def test_mask_rescaled_with_nearest_at_a_non_integer_scale() -> None:
    """Mask 20 px onto a 30 px image (like 256 -> 299): the box follows pixel-centre nearest sampling."""
    mask = np.zeros((MASK, MASK), np.uint8)
    mask[4:10, 2:14] = 1  # any non-zero value is lung; edges away from exact half-pixels
    src_of = np.minimum(((np.arange(30) + 0.5) * MASK / 30).astype(int), MASK - 1)
    rows = np.flatnonzero(mask[src_of].any(axis=1))
    cols = np.flatnonzero(mask[:, src_of].any(axis=0))
    expected = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    assert mask_bbox(Image.fromarray(mask), (30, 30)) == expected
    assert mask_bbox(Image.fromarray(np.zeros((MASK, MASK), np.uint8)), (30, 30)) is None


def test_loader_crops_each_image_to_its_mask(tree: Path) -> None:
    data, manifest = _load(tree, size=16)
    src = np.asarray(Image.open(tree / covid.DATASET_DIR / KNOWN))
    for split in ("train", "val", "test"):
        if KNOWN in manifest.files[split]:
            row = manifest.files[split].index(KNOWN)
            np.testing.assert_array_equal(data.split(split).images[row, 0], src[6:22, 10:26])
            assert data.split(split).labels[row] == 1  # COVID is label 1 of covid-normal
            break
    else:
        pytest.fail(f"{KNOWN} in no split")
    assert data.train.images.dtype == np.uint8 and data.train.images.shape[1:] == (1, 16, 16)
    assert data.train.class_names == ("Normal", "COVID") and data.train.task == "binary-class"
    assert data.name == "covid19-radiography"


def test_missing_and_empty_masks_are_skipped_and_reported(tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="medaug.data.covid"):
        _, manifest = _load(tree, size=16)
    assert set(manifest.skipped) == {("COVID/images/COVID-3.png", "mask missing"),
                                     ("Normal/images/Normal-2.png", "mask empty")}
    used = [f for split in manifest.files.values() for f in split]
    assert "COVID/images/COVID-3.png" not in used and "Normal/images/Normal-2.png" not in used
    assert len(used) == 5 + 5
    assert "COVID-3.png" in caplog.text and "Normal-2.png" in caplog.text
    # the report survives a cache hit
    _, again = _load(tree, size=16)
    assert again.cache_hits == 2 and set(again.skipped) == set(manifest.skipped)


def test_test_set_fixed_by_seed_and_disjoint(tree: Path) -> None:
    data, m = _load(tree, size=16, split_seed=0)
    _, m_same = _load(tree, size=16, split_seed=0, cache=False)
    assert m.test_files == m_same.test_files
    assert m.counts["test"] == {"Normal": 2, "COVID": 2}
    assert m.counts["val"] == {"Normal": 1, "COVID": 1}  # round(0.25 * 3)
    splits = [set(m.files[s]) for s in ("train", "val", "test")]
    assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
    assert len(data.test) == 4 and list(np.bincount(data.test.labels)) == [2, 2]
    other = {load_covid(tree, test_per_class=2, val_fraction=0.25, split_seed=s, cache=False)[1].test_files
             for s in range(1, 6)}
    assert len(other | {m.test_files}) > 1  # the seed does choose the files
    # per-class counts as a mapping; zero for a class is allowed
    _, m2 = _load(tree, size=16, test_per_class={"COVID": 3})
    assert m2.counts["test"] == {"Normal": 0, "COVID": 3}


def test_all_four_classes_including_the_space(tree: Path) -> None:
    data, m = _load(tree, classes="all", size=16, test_per_class=1, val_fraction=0.0)
    assert data.train.class_names == ("Normal", "COVID", "Lung_Opacity", "Viral Pneumonia")
    assert data.train.task == "multi-class" and data.name == "covid19-radiography-4class"
    assert m.counts["test"]["Viral Pneumonia"] == 1 and m.counts["train"]["Viral Pneumonia"] == 2
    assert any(f.startswith("Viral Pneumonia/images/Viral Pneumonia-") for f in m.test_files + m.files["train"])
    assert len(data.val) == 0


def test_cache_hit_returns_identical_arrays_without_decoding(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, m1 = _load(tree, size=16)
    assert m1.cache_hits == 0 and len(m1.cache_entries) == 2

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded an image on a cache hit")

    monkeypatch.setattr(covid, "open_image", no_decoding)
    second, m2 = _load(tree, size=16)
    assert m2.cache_hits == 2
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(first.split(split).images, second.split(split).images)
        np.testing.assert_array_equal(first.split(split).labels, second.split(split).labels)
    assert first.split_hashes == second.split_hashes and m1.files == m2.files
    # another size is another cache entry: it must decode
    with pytest.raises(AssertionError, match="decoded"):
        _load(tree, size=12)


def test_changed_file_invalidates_and_corrupt_entry_is_rebuilt(tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    first, m1 = _load(tree, size=16)
    covid_entry = next(Path(e) for e in m1.cache_entries if Path(e).name.startswith("COVID-"))
    chunks = [p for p in covid_entry.rglob("*") if p.is_file() and "images" in p.parts and p.name != "zarr.json"]
    assert chunks
    chunks[0].write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="medaug.data.covid"):
        second, m2 = _load(tree, size=16)
    assert "rebuilding" in caplog.text and m2.cache_hits == 1
    np.testing.assert_array_equal(first.train.images, second.train.images)
    _, m3 = _load(tree, size=16)
    assert m3.cache_hits == 2  # the rebuilt entry is good
    # a changed image file gives a new key: decoded again, never the stale entry
    img = tree / covid.DATASET_DIR / KNOWN
    Image.fromarray(np.full((IMG, IMG), 9, np.uint8)).save(img)
    third, m4 = _load(tree, size=16)
    assert m4.cache_hits == 1
    split = next(s for s in ("train", "val", "test") if KNOWN in m4.files[s])
    assert (third.split(split).images[m4.files[split].index(KNOWN)] == 9).all()
    assert not list((tree.parent / "cache").glob(".*tmp")) and not list((tree.parent / "cache").glob(".*trash"))


def test_bad_input_is_a_one_line_error(tree: Path, tmp_path: Path) -> None:
    make_covid_tree(tmp_path / "partial", counts={"COVID": 4, "Normal": 4})
    with pytest.raises(MedaugError, match="Lung_Opacity"):
        _load(tmp_path / "partial", classes="all")
    with pytest.raises(MedaugError, match="usable images"):
        _load(tree, test_per_class=5)  # COVID has 5 usable images, none left to train on
    with pytest.raises(MedaugError, match="class subset"):
        _load(tree, classes="three")
    with pytest.raises(MedaugError, match="not found"):
        _load(tmp_path / "nowhere")
    bad = tree / covid.DATASET_DIR / "Normal" / "images" / "Normal-4.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(MedaugError, match="Normal-4.png") as err:
        _load(tree, cache=False)
    assert "\n" not in str(err.value)


def test_dataset_folder_itself_is_accepted(tree: Path) -> None:
    _, via_parent = _load(tree, size=16, cache=False)
    _, direct = _load(tree / covid.DATASET_DIR, size=16, cache=False)
    assert via_parent.files == direct.files and via_parent.file_list_hash == direct.file_list_hash
    assert direct.to_dict()["test_per_class"] == {"Normal": 2, "COVID": 2}


def test_source_options_choose_the_test_set_and_are_recorded(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`covid19-radiography` through the data registry: ExperimentSpec.data_options reach
    load_covid, and the row facts say which files were held out and how they were drawn."""
    import json

    from medaug.data.sources import data_source, load_dataset

    monkeypatch.setenv("XDG_CACHE_HOME", str(tree.parent / "xdg"))
    one = load_dataset("covid19-radiography", 16, root=tree, options={"test_per_class": 1, "val_fraction": 0.25})
    assert len(one.splits.test) == 2 and len(one.facts["test_files"]) == 2 and one.facts["n_skipped"] == 2
    prov = json.loads(one.facts["data_provenance"])
    assert prov["test_per_class"] == {"Normal": 1, "COVID": 1} and prov["val_fraction"] == 0.25
    assert prov["split_seed"] == 0 and prov["classes"] == ["Normal", "COVID"] and prov["size"] == 16
    assert sorted(map(tuple, prov["skipped"])) == [("COVID/images/COVID-3.png", "mask missing"),
                                                   ("Normal/images/Normal-2.png", "mask empty")]
    assert prov["counts"]["test"] == {"Normal": 1, "COVID": 1}
    two = load_dataset("covid19-radiography", 16, root=tree, options={"test_per_class": 2, "val_fraction": 0.25})
    assert set(one.facts["test_files"]) < set(two.facts["test_files"])  # same draw, a longer prefix
    other_seed = load_dataset("covid19-radiography", 16, root=tree,
                              options={"test_per_class": 2, "val_fraction": 0.25, "split_seed": 3})
    assert json.loads(other_seed.facts["data_provenance"])["split_seed"] == 3
    mapping = load_dataset("covid19-radiography", 16, root=tree, options={"test_per_class": {"COVID": 3}})
    assert json.loads(mapping.facts["data_provenance"])["counts"]["test"] == {"Normal": 0, "COVID": 3}
    four = load_dataset("covid19-radiography-4class", 16, root=tree, options={"test_per_class": 1,
                                                                              "val_fraction": 0.0})
    assert len(four.splits.test) == 4 and four.splits.train.num_classes == 4
    # the default is seed 003's 200 per class: far too many for this tree, refused with the numbers
    assert data_source("covid19-radiography").check_options({}) == {"split_seed": 0, "test_per_class": 200,
                                                                    "val_fraction": 0.1}
    with pytest.raises(MedaugError, match="200 test images"):
        load_dataset("covid19-radiography", 16, root=tree)
    with pytest.raises(MedaugError, match=r"^data_options.test_per_clas: unknown option .*did you mean"):
        load_dataset("covid19-radiography", 16, root=tree, options={"test_per_clas": 1})


def test_covid_prepare_command_fills_the_cache_trials_read(tree: Path, capsys: pytest.CaptureFixture) -> None:
    from medaug.cli import build_parser

    parser = build_parser("data")
    cache = tree.parent / "prep-cache"
    args = parser.parse_args(["data", "covid-prepare", "--data-root", str(tree), "--size", "16",
                              "--cache-dir", str(cache), "--workers", "2"])
    assert args.handler(args) == 0
    text = capsys.readouterr().out
    assert any(line.split()[:4] == ["COVID", "6", "5", "1"] for line in text.splitlines()), text
    assert any(line.split()[:4] == ["Normal", "6", "5", "1"] for line in text.splitlines()), text
    assert "skipped COVID/images/COVID-3.png (mask missing)" in text
    assert "skipped Normal/images/Normal-2.png (mask empty)" in text and "written" in text
    _, manifest = _load(tree, size=16, cache_dir=cache)
    assert manifest.cache_hits == 2  # a trial decodes nothing
    assert args.handler(args) == 0 and "found" in capsys.readouterr().out
    two_classes = make_covid_tree(tree.parent / "two", counts={"COVID": 2, "Normal": 2})
    with pytest.raises(MedaugError, match="class folder"):
        covid.prepare_covid(two_classes, "all", 16, cache_dir=cache)
