"""A corrupt or foreign generator checkpoint is one line naming the file and how to start over.

An output folder is untrusted (shared, group-writable on a cluster): whatever is
planted in OUT/checkpoint - random bytes, a crafted pickle whose __reduce__ would run
a command (even with generator.json's sha256 updated to match), a pickle in place of
generator.json, shapes that do not add up - every command that reads the checkpoint
(`generator fit --resume`, `synthesize --checkpoint`, `generator eval --checkpoint`)
exits 2 with one line, runs nothing from the file and writes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from conftest import make_medmnist_npz
from medaug.cli import main


class _Planted:
    """Unpickling this runs `touch MARKER` (what an attacker's pickle would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _set_sha(ckpt: Path, data: bytes) -> None:
    meta = json.loads((ckpt / "generator.json").read_text())
    meta["state_sha256"] = hashlib.sha256(data).hexdigest()
    (ckpt / "generator.json").write_text(json.dumps(meta))


def _plant(kind: str, ckpt: Path, marker: Path) -> Path:
    """Corrupt the checkpoint one way; returns the file the error must name."""
    state, meta = ckpt / "state.pt", ckpt / "generator.json"
    if kind == "random-state":
        state.write_bytes(os.urandom(2048))
        return state
    if kind == "pickle-state":  # a bare pickle, sha256 updated so only the loader stands in the way
        data = pickle.dumps(_Planted(marker))
    elif kind == "torch-zip-state":  # a torch.save zip whose data.pkl holds the planted object
        buf = io.BytesIO()
        torch.save({"name": "class-mean-noise", "nets": _Planted(marker)}, buf)
        data = buf.getvalue()
    elif kind == "foreign-state":  # a valid tensors-only file of the right name that fits nothing
        buf = io.BytesIO()
        torch.save({"name": "class-mean-noise", "nets": {"moments": {"x": torch.zeros(2)}}, "epoch": "one"}, buf)
        data = buf.getvalue()
    elif kind == "pickle-meta":
        meta.write_bytes(pickle.dumps(_Planted(marker)))
        return meta
    elif kind == "absurd-shapes":
        doc = json.loads(meta.read_text())
        doc["num_classes"] = 10**12  # would allocate nets of 10^12 classes
        meta.write_text(json.dumps(doc))
        return meta
    else:
        raise AssertionError(kind)
    state.write_bytes(data)
    _set_sha(ckpt, data)
    return state


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, Path]:
    """A real 1-epoch class-mean-noise fit on tiny data (data root, run folder)."""
    base = tmp_path_factory.mktemp("trust")
    root = base / "data"
    make_medmnist_npz(root / "breastmnist.npz")
    run = base / "run"
    assert main(["generator", "fit", "--dataset", "breastmnist", "--generator", "class-mean-noise", "--out", str(run),
                 "--epochs", "1", "--data-root", str(root), "--no-verify-md5", "--device", "cpu", "--quiet"]) == 0
    return root, run


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


KINDS = ["random-state", "pickle-state", "torch-zip-state", "foreign-state", "pickle-meta", "absurd-shapes"]
COMMANDS = ["fit-resume", "synthesize", "eval"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_planted_checkpoint_is_one_line_exit_2_and_runs_nothing(kind, command, fitted, tmp_path, capsys,
                                                                   one_thread):
    root, run = fitted
    work = tmp_path / "run"
    import shutil

    shutil.copytree(run, work)
    marker = tmp_path / "MARKER"
    named = _plant(kind, work / "checkpoint", marker)
    before = _snapshot(work)
    out = tmp_path / "out"
    common = ["--data-root", str(root), "--no-verify-md5", "--device", "cpu"]
    argv = {
        "fit-resume": ["generator", "fit", "--dataset", "breastmnist", "--generator", "class-mean-noise", "--out",
                       str(work), "--epochs", "2", "--resume", "--quiet", *common],
        "synthesize": ["synthesize", "--checkpoint", str(work / "checkpoint"), "--strategy", "inverse-scarcity",
                       "--fraction", "0.1", "--seed", "0", "--out", str(out / "s.zarr"), *common],
        "eval": ["generator", "eval", "--checkpoint", str(work / "checkpoint"), "--out", str(out), "--n", "20",
                 "--classifier-epochs", "1", "--quiet", *common],
    }[command]
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("medaug: error: "), captured
    assert str(named) in err and "to start over" in err, err
    assert "weights_only" not in err and "Traceback" not in captured.err
    assert not marker.exists()  # nothing from the file ran
    assert _snapshot(work) == before  # the checkpoint folder is left as it was
    assert not out.exists()  # nothing written
