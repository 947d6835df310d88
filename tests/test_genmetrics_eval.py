"""`medaug generator eval` end to end on a tiny set: the Parquet row, TSTR/TRTR, refusals, the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import make_medmnist_npz
from medaug import cli
from medaug.data.medmnist import load_medmnist
from medaug.errors import MedaugError
from medaug.generators import baseline  # noqa: F401  (registers class-mean-noise)
from medaug.generators.base import GENERATORS
from medaug.generators.evaluate import REFERENCE_DIR, EvalOptions, evaluate_generator
from medaug.store.generator_results import COLUMN_NAMES, GENERATOR_EVAL_DIR, SCHEMA, read_eval_rows

#: The fast recipe shortened to 30 steps for the tiny set (the default is the full recipe).
SHORT = {"epochs": 6, "min_steps": 0, "batch_size": 8}
SHORT_ARGV = ["--recipe-set", "epochs=6", "--recipe-set", "min_steps=0", "--recipe-set", "batch_size=8"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("geneval")
    root = base / "data"
    make_medmnist_npz(root / "breastmnist.npz", n=(40, 12, 12))
    splits = load_medmnist("breastmnist", root=root, verify=False)
    gen = GENERATORS.get("class-mean-noise")(1, 28, 2, device="cpu")
    return root, gen.fit(splits.train, base / "gen", plots=False)


def test_eval_row_with_tstr(tmp_path, setup, monkeypatch, capsys):
    root, ckpt = setup
    options = EvalOptions(n=12, tstr=True, recipe_overrides=SHORT, kid_subsets=5, device="cpu")
    row = evaluate_generator(ckpt, tmp_path, options, data_root=root, verify_md5=False)
    files = list((tmp_path / GENERATOR_EVAL_DIR).glob("*.parquet"))
    assert [f.stem for f in files] == [row["eval_id"]]
    table = pq.read_table(files[0])
    assert table.schema.equals(SCHEMA, check_metadata=False) and table.num_rows == 1
    got = read_eval_rows(tmp_path).iloc[0]
    assert tuple(got.index) == COLUMN_NAMES
    assert got["generator"] == "class-mean-noise" and got["dataset"] == "breastmnist" and got["n"] == 12
    assert got["extractor"] == "fast:fastnet" and len(got["extractor_hash"]) == 16 and got["recipe"] == "fast"
    assert got["fid"] >= 0 and got["fid_floor"] >= 0 and math.isfinite(got["kid_mean"])
    for k in ("precision", "recall", "coverage", "mean_confidence", "tstr_acc", "trtr_acc", "tstr_auc", "trtr_auc",
              "tstr_balanced_acc", "trtr_balanced_acc"):
        assert 0.0 <= got[k] <= 1.0, k
    assert got["density"] >= 0 and 0 < got["rmse"] < 1 and got["psnr"] > 0 and got["sam"] >= 0
    assert len(got["confidence_per_class"]) == 2 and got["generated_by"] == "sample"
    # the reference classifier is cached, so a second evaluation (other seed) shares the extractor
    assert len(list((tmp_path / GENERATOR_EVAL_DIR / REFERENCE_DIR).glob("*.pt"))) == 1
    argv = ["generator", "eval", "--checkpoint", str(ckpt), "--n", "12", "--seed", "1", "--classifier-epochs", "2",
            "--kid-subsets", "5", "--device", "cpu", "--data-root", str(root), "--no-verify-md5", "--out",
            str(tmp_path), *SHORT_ARGV]
    assert cli.main(argv) == 0
    assert "FID" in capsys.readouterr().out
    rows = read_eval_rows(tmp_path).set_index("seed")
    again = rows.loc[1]
    assert again["extractor_hash"] == row["extractor_hash"] and again["trtr_acc"] == row["trtr_acc"]
    assert math.isnan(again["tstr_acc"]) and len(rows) == 2
    assert cli.main(argv) == 2 and "exists" in capsys.readouterr().err  # no silent overwrite


def test_eval_refusals_write_nothing(tmp_path, setup):
    root, ckpt = setup
    other = tmp_path / "other"
    make_medmnist_npz(other / "breastmnist.npz", n=(40, 12, 12), seed=3)
    out = tmp_path / "out"
    with pytest.raises(MedaugError, match="train split hash"):
        evaluate_generator(ckpt, out, EvalOptions(n=12, classifier_epochs=1), data_root=other, verify_md5=False)
    with pytest.raises(MedaugError, match="--inception-weights"):
        EvalOptions(extractor="inception")
    with pytest.raises(MedaugError, match="file not found"):
        evaluate_generator(ckpt, out, EvalOptions(extractor="inception", inception_weights=str(tmp_path / "x.pth")),
                           data_root=root, verify_md5=False)
    with pytest.raises(MedaugError, match="--n"):
        EvalOptions(n=-5)
    assert not out.exists()


def test_cli_eval_bad_checkpoint_exit_2(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "ckpt"
    bad.mkdir()
    (bad / "generator.json").write_text('{"name": "cvae"')
    code = cli.main(["generator", "eval", "--checkpoint", str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "corrupted JSON" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
