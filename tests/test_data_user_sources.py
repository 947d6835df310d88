"""Data the user actually has (issue 13 item 5): a class-folder tree by name (`--dataset folder`)
through `medaug train`, `generator fit` and a study's dry run, with one-line errors for bad
trees; and the COVID-19 Radiography loader on a copy without masks (`lung_crop: false`),
chosen by name, recorded in the row, never a silent fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_data_covid import make_covid_tree

from medaug.cli import main
from medaug.data import covid
from medaug.data.folder_source import min_class_images, plan_folder
from medaug.data.sources import data_source, load_dataset
from medaug.errors import MedaugError
from medaug.experiment import ExperimentSpec, run
from medaug.store.results import read_results

pytestmark = pytest.mark.usefixtures("one_thread")

#: A grey level per class, so the classes differ and a row's images can be told apart.
LEVELS = (40, 120, 200)


def make_tree(root: Path, counts: dict[str, int], *, shape=(20, 26), rgb: bool = True, seed: int = 0) -> Path:
    """root/<class>/<n>.png (one image per class in a nested subfolder, as ImageFolder allows)."""
    rng = np.random.default_rng(seed)
    for k, (cls, n) in enumerate(counts.items()):
        for i in range(n):
            arr = np.clip(LEVELS[k % 3] + rng.integers(-20, 20, (*shape, 3)), 0, 255).astype(np.uint8)
            path = root / cls / ("nested" if i == 0 else "") / f"{cls}-{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr if rgb else arr[..., 0]).save(path)
    return root


def one_line_error(fn, *args, **kw) -> str:
    with pytest.raises(MedaugError) as err:
        fn(*args, **kw)
    text = str(err.value)
    assert "\n" not in text
    return text


# ------------------------------------------------------------------ the class-folder source


def test_folder_source_round_trips_through_medaug_train(tmp_path: Path, capsys) -> None:
    """`medaug train --dataset folder`: root relative to --data-root, grayscale, the default
    70/15/15 draw; the row records the options, the layout, counts, the test files and the hash."""
    data = tmp_path / "data"
    make_tree(data / "xrays", {"benign": 10, "malignant": 14})
    out = tmp_path / "runs"
    base = ["train", "--dataset", "folder", "--data-root", str(data), "--data-option", "root=xrays",
            "--data-option", "channels=1", "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--quiet",
            "--out", str(out)]
    assert main(base) == 0, capsys.readouterr()
    rows = read_results(out / "results")
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["dataset"] == "folder" and row["status"] == "finished"
    assert json.loads(row["data_options"]) == {"channels": 1, "fit": "squash", "root": "xrays", "split_seed": 0,
                                               "test_fraction": 0.15, "val_fraction": 0.15}
    prov = json.loads(row["data_provenance"])
    assert prov["layout"] == "class-folders" and prov["classes"] == ["benign", "malignant"]
    assert prov["drawn"] == ["val", "test"] and prov["split_seed"] == 0
    # round(0.15 x 10) = 2 and round(0.15 x 14) = 2 per class for val and for test
    assert prov["counts"] == {"train": {"benign": 6, "malignant": 10}, "val": {"benign": 2, "malignant": 2},
                              "test": {"benign": 2, "malignant": 2}}
    assert row["n_train"] == 16 and len(row["test_files"]) == 4
    assert all(f.startswith(("benign/", "malignant/")) for f in row["test_files"])
    assert row["dataset_md5"] == prov["file_list_hash"] and row["dataset_version"] == f"files-{row['dataset_md5']}"
    assert list(row["class_names"]) == ["benign", "malignant"]

    # another training seed keeps the test set (the split has its own seed); another split seed moves it
    assert main([*base, "--seed", "1"]) == 0
    assert main([*base, "--data-option", "split_seed=5"]) == 0
    rows = read_results(out / "results").set_index("seed", drop=False)
    by_split = {json.loads(r["data_options"])["split_seed"]: set(r["test_files"])
                for _, r in rows.iterrows() if r["seed"] == 0}
    seed1 = rows[rows["seed"] == 1].iloc[0]
    assert set(seed1["test_files"]) == set(row["test_files"]) and seed1["test_hash"] == row["test_hash"]
    assert by_split[5] != by_split[0] and len(by_split[5]) == 4


def test_folder_with_its_own_split_folders_is_used_as_given(tmp_path: Path) -> None:
    """root/{train,val,test}/<class>: the data's split as it is; without val/, val is drawn from train/."""
    for split, n in (("train", 8), ("val", 3), ("test", 4)):
        make_tree(tmp_path / "t" / split, {"a": n, "b": n + 1}, seed=len(split))
    loaded = load_dataset("folder", 16, root=tmp_path, options={"root": "t", "channels": 1})
    splits = loaded.splits
    assert [len(splits.split(s)) for s in ("train", "val", "test")] == [17, 7, 9]
    assert splits.train.images.shape[1:] == (1, 16, 16) and splits.train.class_names == ("a", "b")
    prov = json.loads(loaded.facts["data_provenance"])
    assert prov["layout"] == "split-folders" and prov["drawn"] == []
    assert prov["val_fraction"] is None and prov["test_fraction"] is None and prov["split_seed"] is None
    assert all(f.startswith("test/") for f in loaded.facts["test_files"]) and len(loaded.facts["test_files"]) == 9

    import shutil

    shutil.rmtree(tmp_path / "t" / "val")
    drawn = load_dataset("folder", 16, root=None, options={"root": str(tmp_path / "t"), "val_fraction": 0.25})
    prov = json.loads(drawn.facts["data_provenance"])
    assert prov["drawn"] == ["val"] and prov["val_fraction"] == 0.25 and prov["test_fraction"] is None
    assert prov["counts"]["val"] == {"a": 2, "b": 2} and prov["counts"]["test"] == {"a": 4, "b": 5}
    assert drawn.splits.train.images.shape[1] == 3  # RGB by default


def test_bad_folders_are_one_line_errors_naming_the_path(tmp_path: Path) -> None:
    def load(root: Path, **options):
        return load_dataset("folder", 16, root=None, options={"root": str(root), **options})

    assert "image folder not found" in one_line_error(load, tmp_path / "nowhere")
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(flat / "x.png")
    assert one_line_error(load, flat).startswith(f"{flat}: no class folders; expected root/<class>/<image>")
    single = make_tree(tmp_path / "single", {"only": 6})
    assert one_line_error(load, single).startswith(f"{single}: 1 class folder ['only']; expected at least 2")
    empty = make_tree(tmp_path / "empty", {"a": 6, "b": 6})
    (empty / "c").mkdir()
    (empty / "c" / "notes.txt").write_text("no images here")
    assert one_line_error(load, empty).startswith(f"{empty / 'c'}: empty class folder")

    # 3 images cannot give a class a train, a val and a test image at 15 %: 4 can
    assert min_class_images(0.15, 0.15) == 4
    small = make_tree(tmp_path / "small", {"a": 10, "rare": 3})
    msg = one_line_error(load, small)
    assert msg.startswith(f"{small / 'rare'}: 3 image(s), too few for the split (val_fraction 0.15, "
                          "test_fraction 0.15): a class needs at least 4")
    assert load(small, val_fraction=0.2, test_fraction=0.2).splits.test.class_counts().tolist() == [2, 1]

    broken = make_tree(tmp_path / "broken", {"a": 6, "b": 6})
    bad = broken / "b" / "b-3.png"
    bad.write_bytes(b"not a png")
    assert one_line_error(load, broken).startswith(f"{bad}: unreadable image")

    split = tmp_path / "split"
    make_tree(split / "train", {"a": 6, "b": 6})
    make_tree(split / "test", {"a": 2, "c": 2})
    assert one_line_error(load, split).startswith(f"{split / 'test'}: class folders ['a', 'c'] differ from")
    only_train = tmp_path / "only-train"
    make_tree(only_train / "train", {"a": 6, "b": 6})
    assert "split folder(s) ['test'] missing" in one_line_error(load, only_train)
    make_tree(only_train / "test", {"a": 2, "b": 2})
    make_tree(only_train / "extra", {"a": 2})
    assert "folders ['extra'] beside the split folders" in one_line_error(load, only_train)

    # options are checked by name before any file is read
    assert one_line_error(load, single, channels=2) == "data_options.channels: expected 1 (grayscale) or 3 (RGB), got 2"
    assert "did you mean 'split_seed'" in one_line_error(load, single, split_sed=1)
    assert "val_fraction 0 and test_fraction 0.15 must both be > 0" in one_line_error(
        load, make_tree(tmp_path / "two", {"a": 6, "b": 6}), val_fraction=0.0)
    with pytest.raises(MedaugError, match=r"^spec field data_options.fit: expected one of squash, center-crop"):
        ExperimentSpec(dataset="folder", data_options={"fit": "stretch"})


def test_relative_root_is_read_under_the_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`root` relative: under --data-root, else $MEDAUG_DATA_ROOT; default ".": the data root itself."""
    make_tree(tmp_path / "d" / "x", {"a": 5, "b": 5})
    monkeypatch.setenv("MEDAUG_DATA_ROOT", str(tmp_path / "d"))
    via_env = load_dataset("folder", 8, options={"root": "x"}).splits
    direct = load_dataset("folder", 8, root=tmp_path / "d" / "x").splits
    assert via_env.test.content_hash == direct.test.content_hash and via_env.source == direct.source
    assert plan_folder(tmp_path / "d" / "x").layout == "class-folders"


def test_generator_fit_accepts_the_folder_source_and_synthesize_reloads_it(tmp_path: Path, capsys) -> None:
    from medaug.generators import read_checkpoint_meta
    from medaug.generators.data import data_options_of
    from medaug.generators.strategies import Strategy
    from medaug.generators.synthesize import synthesize

    data = tmp_path / "data"
    make_tree(data / "skin", {"a": 8, "b": 12})
    out = tmp_path / "gen"
    argv = ["generator", "fit", "--dataset", "folder", "--data-root", str(data), "--data-option", "root=skin",
            "--data-option", "split_seed=2", "--generator", "cvae", "--size", "28", "--epochs", "1",
            "--batch-size", "4", "--set", "width=0.125", "--device", "cpu", "--quiet", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().out
    meta = read_checkpoint_meta(out / "checkpoint")
    assert meta["dataset"]["name"] == "folder" and (meta["channels"], meta["size"]) == (3, 28)
    assert meta["class_names"] == ["a", "b"]
    assert data_options_of(meta)["root"] == "skin" and data_options_of(meta)["split_seed"] == 2
    result = synthesize(out / "checkpoint", Strategy("per-class", classes=("a",), count=2), seed=0,
                        out=tmp_path / "s.zarr", data_root=data, device="cpu")
    assert result.provenance["train_hash"] == meta["dataset"]["train_hash"]


def _study(path: Path, root: str) -> Path:
    path.write_text(f"""\
name: user-folder
base: {{dataset: folder, size: 28, epochs: 1, data_options: {{root: {root}, channels: 1}}}}
grid:
  augmentation: [none, rot-shift-flip]
  seed: [0, 1]
""")
    return path


def test_a_study_on_a_folder_dry_runs_and_names_a_missing_tree(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    make_tree(data / "xrays", {"normal": 6, "pneumonia": 6})
    study = _study(tmp_path / "study.yaml", "xrays")
    capsys.readouterr()
    code = main(["sweep", str(study), "--dry-run", "--data-root", str(data), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "4 trials runnable" in out
    assert 'data options of folder: {"channels": 1, "fit": "squash", "root": "xrays"' in out
    assert not (tmp_path / "out").exists()

    missing = _study(tmp_path / "missing.yaml", "elsewhere")
    code = main(["sweep", str(missing), "--dry-run", "--data-root", str(data), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 2 and "4 of 4 cell(s) that would run cannot" in err
    assert f"folder data: {data / 'elsewhere'}: image folder not found" in out

    small = tmp_path / "small"
    make_tree(small / "xrays", {"normal": 6, "pneumonia": 2})
    code = main(["sweep", str(study), "--dry-run", "--data-root", str(small), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 2 and f"{small / 'xrays' / 'pneumonia'}: 2 image(s), too few for the split" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(study.read_text().replace("channels: 1", "channels: 4"))
    assert main(["sweep", str(bad), "--dry-run", "--data-root", str(data)]) == 2
    assert capsys.readouterr().err == (f"medaug: error: {bad}: base.data_options.channels: expected 1 (grayscale) "
                                       "or 3 (RGB), got 4\n")


# ------------------------------------------------------------------ COVID without masks


def _drop_masks(root: Path) -> Path:
    import shutil

    for cls in ("COVID", "Normal"):
        shutil.rmtree(root / covid.DATASET_DIR / cls / "masks")
    return root


def test_covid_without_masks_needs_lung_crop_false_and_the_row_records_it(tmp_path: Path) -> None:
    tree = _drop_masks(make_covid_tree(tmp_path / "raw", counts={"COVID": 6, "Normal": 6}))
    options = {"test_per_class": 1, "val_fraction": 0.25}
    # without the option: a clear error naming the folder and the option, not a silent whole-image run
    msg = one_line_error(run, ExperimentSpec(dataset="covid19-radiography", data_options=options, epochs=1),
                         tmp_path / "refused", data_root=tree, device="cpu")
    masks = tree / covid.DATASET_DIR / "Normal" / "masks"
    assert msg.startswith(f"{masks}: folder not found; seed 003's lung crop needs the masks")
    assert "lung_crop=false" in msg
    assert not (tmp_path / "refused" / "results").exists()

    spec = ExperimentSpec(dataset="covid19-radiography", data_options={**options, "lung_crop": False},
                          epochs=1, batch_size=4)
    row = run(spec, tmp_path / "out", data_root=tree, device="cpu")
    stored = read_results(tmp_path / "out" / "results").iloc[0]
    assert stored["run_id"] == row["run_id"] and json.loads(stored["data_options"])["lung_crop"] is False
    prov = json.loads(stored["data_provenance"])
    assert prov["lung_crop"] is False and prov["skipped"] == [] and stored["n_skipped"] == 0
    assert prov["counts"]["test"] == {"Normal": 1, "COVID": 1} and stored["n_train"] == 8
    # the images are the whole radiographs, resized
    loaded = load_dataset("covid19-radiography", 28, root=tree, options={**options, "lung_crop": False})
    first = loaded.facts["test_files"][0]
    expected = covid.whole_image(Image.open(tree / covid.DATASET_DIR / first), 28)
    np.testing.assert_array_equal(loaded.splits.test.images[0, 0], expected)


def test_lung_crop_default_keeps_specs_and_keys_and_never_shares_a_cache_entry(tmp_path: Path, capsys) -> None:
    """The option at its default leaves data_options (and so run ids) as they were; cropped and
    whole-image pools are distinct cache entries; with masks present the crop is still the default."""
    source = data_source("covid19-radiography")
    assert "lung_crop" not in source.check_options({})
    assert source.check_options({"lung_crop": True}) == source.check_options({})
    assert source.check_options({"lung_crop": False})["lung_crop"] is False
    assert ExperimentSpec(dataset="covid19-radiography", data_options={"lung_crop": True}).run_id == \
        ExperimentSpec(dataset="covid19-radiography").run_id
    assert "expected true or false, got 'no'" in one_line_error(source.check_options, {"lung_crop": "no"})

    tree = make_covid_tree(tmp_path / "raw", counts={"COVID": 6, "Normal": 6})
    cache = tmp_path / "cache"
    kw = {"test_per_class": 1, "val_fraction": 0.25, "cache_dir": cache, "workers": 1, "size": 16}
    cropped, m_crop = covid.load_covid(tree, **kw)
    whole, m_whole = covid.load_covid(tree, lung_crop=False, **kw)
    assert m_crop.lung_crop is True and m_whole.lung_crop is False
    assert len(m_crop.skipped) == 2 and m_whole.skipped == ()  # masks are not read at all without the crop
    assert set(m_crop.cache_entries).isdisjoint(m_whole.cache_entries) and m_whole.cache_hits == 0
    _, again = covid.load_covid(tree, lung_crop=False, **kw)
    assert again.cache_hits == 2
    known = "COVID/images/COVID-1.png"
    split = next(s for s in ("train", "val", "test") if known in m_crop.files[s])
    crop_img = cropped.split(split).images[m_crop.files[split].index(known), 0]
    split_w = next(s for s in ("train", "val", "test") if known in m_whole.files[s])
    whole_img = whole.split(split_w).images[m_whole.files[split_w].index(known), 0]
    assert not np.array_equal(crop_img, whole_img)

    # a masks folder that holds no mask of this class's images is refused too, and prepare says it alike
    masks = tree / covid.DATASET_DIR / "Normal" / "masks"
    for p in masks.iterdir():
        p.rename(p.with_name("other-" + p.name))
    assert "no mask of any of its 6 images" in one_line_error(covid.load_covid, tree, **kw)
    assert "lung_crop=false" in one_line_error(covid.prepare_covid, tree, size=16, cache_dir=cache)
    assert covid.prepare_covid(tree, size=16, cache_dir=cache, lung_crop=False)[1].usable == 6
    assert main(["data", "covid-prepare", "--data-root", str(tree), "--size", "16", "--cache-dir", str(cache),
                 "--workers", "1", "--no-lung-crop"]) == 0
    printed = capsys.readouterr().out
    assert "16 px, whole images (no lung crop)" in printed and "Normal" in printed and "found" in printed


def test_covid_dry_run_names_missing_masks_unless_lung_crop_is_false(tmp_path: Path, capsys) -> None:
    tree = _drop_masks(make_covid_tree(tmp_path / "raw", counts={"COVID": 6, "Normal": 6}))

    def study(lung_crop: str) -> Path:
        path = tmp_path / f"covid-{lung_crop}.yaml"
        path.write_text(f"""\
name: covid-no-masks
base: {{dataset: covid19-radiography, size: 28, epochs: 1,
        data_options: {{test_per_class: 1, val_fraction: 0.25{lung_crop}}}}}
grid:
  seed: [0, 1]
""")
        return path

    capsys.readouterr()
    assert main(["sweep", str(study("")), "--dry-run", "--data-root", str(tree)]) == 2
    out = capsys.readouterr().out
    assert "no lung masks in" in out and "lung_crop=false" in out
    assert main(["sweep", str(study(", lung_crop: false")), "--dry-run", "--data-root", str(tree)]) == 0
    assert '"lung_crop": false' in capsys.readouterr().out


def test_data_info_and_montage_read_any_source(tmp_path: Path, capsys) -> None:
    """`medaug data info|montage|distribution` on a class-folder tree (not only MedMNIST files):
    the counts a run would train on, and the figures; an unknown option is one line, exit 2."""
    data = tmp_path / "data"
    make_tree(data / "xrays", {"benign": 10, "malignant": 14})
    args = ["folder", "--data-root", str(data), "--data-option", "root=xrays", "--size", "16"]
    assert main(["data", "info", *args]) == 0
    out = capsys.readouterr().out
    loaded = load_dataset("folder", 16, data, options={"root": "xrays"}).splits
    assert out.startswith("folder (16x16, 3 channel(s)), task: binary-class\n  file: ")
    assert f"md5: {loaded.md5} (digest of the source's files" in out and "description" not in out
    assert "  layout: class-folders\n" in out  # what the loader decided (DatasetSplits.info)
    for i, name in enumerate(loaded.train.class_names):
        counts = [int(loaded.split(s).class_counts()[i]) for s in ("train", "val", "test")]
        assert any(line.split()[1:] == [name, *map(str, counts)] for line in out.splitlines())
    assert main(["data", "montage", *args, "--per-class", "2", "--out", str(tmp_path / "m.png")]) == 0
    assert main(["data", "distribution", *args, "--out", str(tmp_path / "d.png")]) == 0
    assert (tmp_path / "m.png").stat().st_size > 0 and (tmp_path / "d.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["data", "info", *args, "--data-option", "colour=yes"]) == 2
    err = capsys.readouterr().err
    assert "colour" in err and len(err.strip().splitlines()) == 1
