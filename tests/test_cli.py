"""The `medaug` command as a user runs it: one-line summaries, exit code 2 on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from medaug.cli import main
from sweep_helpers import tiny_data  # noqa: F401  (fixture: the data the 2-node SLURM DDP test uses)


def test_train_prints_one_line_and_writes_the_row(tiny_root: Path, tmp_path: Path, capsys) -> None:
    code = main(["train", "--dataset", "breastmnist", "--augment", "sharpness-contrast-flip", "--wrs", "--seed", "3",
                 "--epochs", "2", "--batch-size", "16", "--out", str(tmp_path), "--data-root", str(tiny_root),
                 "--no-verify-md5", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "test ACC" in out[0] and "AUC" in out[0]
    df = pd.read_parquet(tmp_path / "results")
    assert df.loc[0, "wrs"] and df.loc[0, "seed"] == 3 and df.loc[0, "augmentation"] == "sharpness-contrast-flip"


def test_train_under_torchrun_is_data_parallel_and_matches_one_process(tiny_data: Path, tmp_path: Path) -> None:  # noqa: F811
    """`torchrun --nproc_per_node 2 medaug train`: two gloo ranks, each training its half of
    the global batch of 16; one summary line and one row (rank 0). Tolerances as in the
    2-node SLURM test (BatchNorm sees each rank's half batch, so not bit-identical)."""
    import os

    args = ["train", "--dataset", "breastmnist", "--epochs", "3", "--batch-size", "16", "--lr", "0.1",
            "--data-root", str(tiny_data), "--no-verify-md5", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "medaug.cli", *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "medaug.cli", *args, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr
    assert len(two.stdout.strip().splitlines()) == 1 and "test ACC" in two.stdout
    ref = pd.read_parquet(tmp_path / "one" / "results").iloc[0]
    got = pd.read_parquet(tmp_path / "two" / "results").iloc[0]
    assert (ref.world_size, got.world_size) == (1, 2) and got.run_id == ref.run_id
    for g, r in zip(got.history, ref.history, strict=True):
        assert abs(g["val_acc"] - r["val_acc"]) <= 0.1 + 1e-9, (g, r)
        assert abs(g["train_loss"] - r["train_loss"]) <= 0.1 * r["train_loss"] + 0.01, (g, r)
    assert abs(got.test_acc - ref.test_acc) <= 0.05


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "nomnist"], "unknown dataset 'nomnist'"),
    (["--dataset", "breastmnist", "--classifier", "vgg99"], "unknown classifier 'vgg99'"),
    (["--dataset", "breastmnist", "--augment", "mixup"], "unknown augmentation 'mixup'"),
    (["--dataset", "breastmnist", "--size", "32"], "unsupported size 32"),
    (["--dataset", "breastmnist", "--epochs", "0"], "spec field 'epochs'"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tiny_root: Path, tmp_path: Path, capsys, args,
                                                            message: str) -> None:
    out = tmp_path / "out"
    code = main(["train", *args, "--out", str(out), "--data-root", str(tiny_root), "--no-verify-md5", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and err[0].startswith("medaug: error: ")
    assert not out.exists()


def test_missing_data_and_md5_mismatch_exit_2(tiny_root: Path, tmp_path: Path, capsys) -> None:
    base = ["train", "--dataset", "breastmnist", "--out", str(tmp_path / "o"), "--quiet"]
    assert main([*base, "--data-root", str(tmp_path / "empty")]) == 2
    assert "data file not found" in capsys.readouterr().err
    assert main([*base, "--data-root", str(tiny_root)]) == 2
    assert "does not match medmnist INFO md5" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_finished_result_refused_then_overwritten(tiny_root: Path, tmp_path: Path, capsys) -> None:
    args = ["train", "--dataset", "breastmnist", "--epochs", "1", "--out", str(tmp_path), "--data-root",
            str(tiny_root), "--no-verify-md5", "--quiet"]
    assert main(args) == 0
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_quickstart_table_has_four_configurations(tiny_root: Path, tmp_path: Path, capsys) -> None:
    code = main(["quickstart", "--epochs", "1", "--out", str(tmp_path), "--data-root", str(tiny_root),
                 "--no-verify-md5", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    for name in ("no geometric / WRS", "WRS only", "geometric only", "WRS + geometric"):
        assert name in out
    assert len(pd.read_parquet(tmp_path / "results")) == 20
    assert "Ray experiment:" in out and "20 finished, 0 failed" in out
    # a second call reuses the finished rows instead of failing or recomputing
    assert main(["quickstart", "--epochs", "1", "--out", str(tmp_path), "--data-root", str(tiny_root),
                 "--no-verify-md5", "--quiet"]) == 0


def test_data_commands(real_root: Path, tmp_path: Path, capsys) -> None:
    assert main(["data", "info", "breastmnist", "--data-root", str(real_root)]) == 0
    out = capsys.readouterr().out
    assert "750601b1f35ba3300ea97c75c52ff8f6" in out and "CC BY 4.0" in out and "147" in out and "399" in out
    for cmd in ("montage", "distribution"):
        png = tmp_path / f"{cmd}.png"
        assert main(["data", cmd, "breastmnist", "--data-root", str(real_root), "--out", str(png)]) == 0
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


@pytest.mark.slow
def test_real_breastmnist_end_to_end(real_root: Path, tmp_path: Path) -> None:
    """The installed console script on the real file: a few epochs learn something."""
    exe = Path(sys.executable).with_name("medaug")
    proc = subprocess.run([str(exe), "train", "--dataset", "breastmnist", "--epochs", "4", "--out", str(tmp_path),
                           "--data-root", str(real_root), "--quiet", "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    df = pd.read_parquet(tmp_path / "results")
    assert df.loc[0, "dataset_md5"] == "750601b1f35ba3300ea97c75c52ff8f6"
    assert df.loc[0, "test_acc"] >= 0.73  # above the 114/156 majority-class rate
    assert df.loc[0, "test_auc"] > 0.6
