"""Class-folder and labels-CSV data sets (seed 002: ISIC 2019) on generated tiny files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medaug.data.folders import ISIC2019_CLASSES, load_class_folders, load_labels_csv, read_labels_csv
from medaug.data.splits import fraction_counts, hash_rank
from medaug.errors import MedaugError

#: Class -> (image count, RGB colour): images of a class are that colour plus a little noise.
COUNTS = {"AK": (4, (250, 10, 10)), "MEL": (10, (10, 250, 10)), "NV": (20, (10, 10, 250))}


def _image(path: Path, colour: tuple[int, int, int], rng: np.random.Generator, shape=(30, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.clip(np.array(colour)[None, None] + rng.integers(-5, 6, (*shape, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path)


def make_folders(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls, (n, colour) in COUNTS.items():
        for i in range(n):
            ext = ".png" if i % 2 else ".jpg"
            sub = "nested/" if i == 0 else ""
            _image(root / cls / f"{sub}{cls.lower()}_{i}{ext}", colour, rng)
    (root / "NV" / "README.txt").write_text("not an image")
    return root


def make_isic(tmp: Path, rows: list[tuple[str, str]] | None = None) -> tuple[Path, Path]:
    """An ISIC 2019-style ground-truth CSV (all nine columns, 1.0/0.0) and its JPEG folder."""
    rng = np.random.default_rng(1)
    rows = rows or [(f"ISIC_{i:07d}", cls) for i, cls in enumerate(["MEL"] * 6 + ["NV"] * 12 + ["DF"] * 3)]
    images = tmp / "ISIC_2019_Training_Input"
    lines = ["image," + ",".join(ISIC2019_CLASSES)]
    for image, cls in rows:
        lines.append(image + "," + ",".join("1.0" if c == cls else "0.0" for c in ISIC2019_CLASSES))
        colour = (40 * (ISIC2019_CLASSES.index(cls) + 1), 100, 100) if cls in ISIC2019_CLASSES else (0, 0, 0)
        _image(images / f"{image}.jpg", colour, rng, shape=(60, 80))
    csv_path = tmp / "ISIC_2019_Training_GroundTruth.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    return csv_path, images


def test_class_folders_load_resize_and_stratify(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "derm")
    data = load_class_folders(root, size=16, channels=3, val_fraction=0.3, test_fraction=0.2, seed=0)
    assert data.train.class_names == ("AK", "MEL", "NV") and data.train.task == "multi-class"
    assert data.name == "derm"
    assert data.train.images.shape[1:] == (3, 16, 16) and data.train.images.dtype == np.uint8
    counts = {s: data.split(s).class_counts().tolist() for s in ("train", "val", "test")}
    assert counts == {"train": [2, 5, 10], "val": [1, 3, 6], "test": [1, 2, 4]}  # round(f * n) per class
    for s in ("train", "val", "test"):  # the colour says the class: images are labelled right
        ims, labs = data.split(s).images, data.split(s).labels
        assert (ims.reshape(len(ims), 3, -1).mean(axis=2).argmax(axis=1) == labs).all()
    gray = load_class_folders(root, size=8, channels=1, val_fraction=0.3, test_fraction=0.2, seed=0)
    assert gray.train.images.shape[1:] == (1, 8, 8)
    np.testing.assert_array_equal(gray.train.labels, data.train.labels)  # the split does not depend on decoding
    two = load_class_folders(root, size=8, classes=["NV", "AK"])
    assert two.train.class_names == ("NV", "AK") and two.train.task == "binary-class"


def test_split_is_fixed_by_seed_and_a_partition(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "derm")
    a = load_class_folders(root, size=8, seed=3)
    b = load_class_folders(root, size=8, seed=3)
    c = load_class_folders(root, size=8, seed=4)
    assert a.split_hashes == b.split_hashes
    assert a.split_hashes["val"] != c.split_hashes["val"]
    assert len(a.train) + len(a.val) + len(a.test) == 34
    assert len(a.test) == 0 and a.val.class_counts().tolist() == [1, 3, 6]  # seed 002: 30 % validation
    both = np.concatenate([a.train.images, a.val.images])
    assert len(np.unique(both.reshape(len(both), -1), axis=0)) == 34  # no image in two splits


def test_fraction_counts_keep_a_training_image() -> None:
    assert fraction_counts([1, 2, 3, 10], 0.5, 0.4) == ([0, 1, 1, 5], [0, 0, 1, 4])
    with pytest.raises(MedaugError, match="val_fraction"):
        fraction_counts([3], 0.6, 0.4)
    assert list(hash_rank(["a", "b", "c"], "s")) == list(hash_rank(["a", "b", "c"], "s"))


def test_isic_csv(tmp_path: Path) -> None:
    csv_path, images = make_isic(tmp_path)
    data = load_labels_csv(csv_path, images, size=12, seed=0)
    assert data.train.class_names == ("MEL", "NV", "DF")  # empty columns (UNK, ...) dropped
    assert data.name == "ISIC_2019_Training_GroundTruth"
    assert data.val.class_counts().tolist() == [2, 4, 1] and len(data.test) == 0
    red = data.train.images[:, 0].reshape(len(data.train), -1).mean(axis=1)
    assert (np.abs(red - np.array([40, 80, 240])[data.train.labels]) < 12).all()
    sub = load_labels_csv(csv_path, images, size=12, channels=1, classes=["DF", "MEL"], val_fraction=0.2)
    assert sub.train.class_names == ("DF", "MEL") and len(sub.train) + len(sub.val) == 9
    assert sub.train.images.shape[1] == 1
    ids, labels, cols = read_labels_csv(csv_path)
    assert cols == ISIC2019_CLASSES and ids[0] == "ISIC_0000000" and labels[0] == 0


def test_bad_input_names_the_file(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "derm")
    (root / "SCC").mkdir()
    with pytest.raises(MedaugError, match="SCC: empty class folder"):
        load_class_folders(root, size=8)
    (root / "SCC").rmdir()
    (root / "MEL" / "mel_3.png").write_bytes(b"broken")
    with pytest.raises(MedaugError, match="mel_3.png: unreadable image") as err:
        load_class_folders(root, size=8)
    assert "\n" not in str(err.value)

    csv_path, images = make_isic(tmp_path)
    text = csv_path.read_text().splitlines()
    two = text[:3] + [text[3].replace("0.0", "1.0", 1)] + text[4:]
    csv_path.write_text("\n".join(two) + "\n")
    with pytest.raises(MedaugError, match=r"line 4 \(image 'ISIC_0000002'\): 2 labels set"):
        load_labels_csv(csv_path, images, size=8)
    none = text[:3] + [text[3].replace("1.0", "0.0")] + text[4:]
    csv_path.write_text("\n".join(none) + "\n")
    with pytest.raises(MedaugError, match="0 labels set"):
        load_labels_csv(csv_path, images, size=8)
    csv_path.write_text("\n".join(text) + "\n")
    (images / "ISIC_0000005.jpg").unlink()
    with pytest.raises(MedaugError, match="ISIC_0000005.jpg: image listed in"):
        load_labels_csv(csv_path, images, size=8)
    with pytest.raises(MedaugError, match="channels"):
        load_labels_csv(csv_path, images, size=8, channels=2)
