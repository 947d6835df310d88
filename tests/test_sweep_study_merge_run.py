"""Issue 10 item 8, study side, end to end: a study whose grid and search repeat a spec
trains each experiment once (one row, one progress line per epoch), on the real local
executor (Ray)."""

from __future__ import annotations

import json

import pandas as pd

from medaug.cli import main
from sweep_helpers import ray_local, tiny_data, write  # noqa: F401  (fixtures)


def test_repeated_cells_and_samples_train_once(tmp_path, capsys, tiny_data, ray_local, one_thread):  # noqa: F811
    path = write(tmp_path / "rep.yaml", """
name: rep
base: {dataset: breastmnist, epochs: 1, lr: 0.1}
grid:
  seed: [0, 0]                          # the same cell twice
search:
  batch_size: {choice: [16, 32]}        # 4 samples of 2 values: repeats certain
num_samples: 4
resources: {cpus: 1}
""")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--data-root", str(tiny_data), "--no-verify-md5",
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "2 finished, 0 failed, 0 stopped" in text, text
    rows = pd.concat([pd.read_parquet(p) for p in sorted((out / "results").glob("*.parquet"))])
    assert sorted(rows.batch_size) == [16, 32] and (rows.status == "finished").all()
    for run_id in rows.run_id:  # each trained once: one epoch line, no line from a second training
        lines = (out / "runs" / run_id / "progress.jsonl").read_text().splitlines()
        assert [json.loads(ln)["epoch"] for ln in lines] == [1], lines
