"""Issue 10 on the study-file side, driven through `medaug sweep` as a user hits it:

- non-finite or out-of-range numbers anywhere in a study (`.inf`, `.nan`, `1e400`,
  `1e300` for lr, `resources: {cpus: .inf}`, search bounds, scheduler settings) are a
  one-line error naming the file and field, exit 2, nothing written;
- a key written twice in one mapping, at any depth, names the file, line and key;
- a grid too large to run is refused from its axis lengths, before anything is expanded;
- cells (and search samples) that are the same experiment are merged, and the dry run
  says so.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from medaug.cli import main
from medaug.sweep.study import MAX_TRIALS, load_study
from sweep_helpers import write

BASE = "name: t\nbase: {dataset: breastmnist, epochs: 2}\n"


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def refused_by_cli(tmp_path: Path, capsys, text: str, *args: str) -> str:
    """Run `medaug sweep STUDY --out OUT ARGS` (a real run, not a dry run: the study must be
    refused before Ray starts); assert exit 2, one stderr line, nothing written."""
    path = write(tmp_path / "s.yaml", text)
    before = files_under(tmp_path)
    capsys.readouterr()
    code = main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet", *args])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.startswith(f"medaug: error: {path}: ") and err.count("\n") == 1, err
    assert files_under(tmp_path) == before  # no results folder, no Ray experiment, nothing
    return err.strip()


# ----------------------------------------------------------------------------- item 5: numbers

@pytest.mark.parametrize("text, where", [
    (BASE.replace("epochs: 2", "epochs: 2, lr: .inf"), "base.lr: expected a finite number"),
    (BASE.replace("epochs: 2", "epochs: 2, lr: .nan"), "base.lr: expected a finite number"),
    (BASE.replace("epochs: 2", "epochs: 2, weight_decay: -.inf"), "base.weight_decay: expected a finite number"),
    (BASE.replace("epochs: 2", "epochs: 2, lr: 1.0e+400"), "base.lr: expected a finite number"),  # YAML: inf
    (BASE.replace("epochs: 2", "epochs: 2, lr: 1.0e+300"), "base.lr: expected "),  # finite, not a learning rate
    (BASE.replace("epochs: 2", "epochs: 2, lr: 1e300"), "base.lr: expected a number, got '1e300' (a string); "
                                                        "write 1.0e+300"),  # YAML 1.1 reads 1e300 as text
    (BASE + "grid: {lr: [0.1, .nan]}\n", "grid.lr[1]: expected a finite number"),
    (BASE + "grid: {method: {a: {momentum: .nan}}}\n", "grid.method.a.momentum: expected a finite number"),
    (BASE + "grid: {milestones: [[0.5, .inf]]}\n", "grid.milestones[0][1]: expected a finite number"),
    (BASE + "search: {lr: {loguniform: [1.0e-4, .inf]}}\n", "search.lr.loguniform[1]: expected a finite number"),
    (BASE + "search: {lr: {uniform: [0.1, 1.0e+300]}}\n", "search.lr.uniform[1]: expected "),
    (BASE + "search: {lr: {choice: [0.1, .inf]}}\n", "search.lr.choice[1]: expected a finite number"),
    (BASE + "search: {momentum: {uniform: [.nan, 0.5]}}\n", "search.momentum.uniform[0]: expected a finite number"),
    (BASE + "search: {seed: {randint: [0, 99999999999999999999999]}}\n", "search.seed.randint[1]: expected an integer"),
    (BASE + "resources: {cpus: .inf}\n", "resources.cpus: expected a finite number"),
    (BASE + "resources: {cpus: 1.0e+300}\n", "resources.cpus: expected a number <= "),
    (BASE + "resources: {gpus: .nan}\n", "resources.gpus: expected a finite number"),
    (BASE + "resources: {gpus: -0.5}\n", "resources.gpus: expected a number >= 0"),
    (BASE + "resources: {nodes: 4294967296}\n", "resources.nodes: expected an integer <= 2147483647"),
    (BASE + "resources: {threads: .inf}\n", "resources.threads: expected a finite number"),
    (BASE + "resources: {time: 99999999999}\n", "resources.time: expected a time limit of at most"),
    (BASE + "resources: {time: 999999999999h}\n", "resources.time: expected a time limit of at most"),
    (BASE + "resources: {mem: 99999999999999999999999G}\n", "resources.mem: expected a memory amount"),
    (BASE + "scheduler: {type: asha, grace_period: .inf}\n", "scheduler.grace_period: expected a finite number"),
    (BASE + "scheduler: {type: asha, max_t: 1e300}\n", "scheduler.max_t: expected an integer"),
    (BASE + "scheduler: {type: asha, reduction_factor: .nan}\n", "scheduler.reduction_factor: expected a finite"),
    (BASE + "scheduler: {type: asha, grace_period: 5}\n", "scheduler.grace_period: expected at most the longest "
                                                           "trial's epochs (2), got 5"),
    (BASE + "num_samples: .inf\n", "num_samples: expected a finite number"),
    (BASE + "num_samples: 0\n", "num_samples: expected an integer >= 1"),
    (BASE + "max_failures: .inf\n", "max_failures: expected a finite number"),
    (BASE + "grid: {synthetic: [{generator: cvae, fraction: .nan}]}\n",
     "grid.synthetic[0].fraction: expected a finite number"),
    (BASE + "synthetic: {seed: .inf}\n", "synthetic.seed: expected a finite number"),
    (BASE + "generators: {cvae: {epochs: .inf}}\n", "generators.cvae.epochs: expected a finite number"),
    ("name: t\nbase: {dataset: covid19-radiography, size: 64, data_options: {val_fraction: .nan}}\n",
     "base.data_options.val_fraction: expected a finite number"),
    (BASE + "description: .inf\n", "description: expected a finite number"),
])
def test_non_finite_and_out_of_range_numbers_are_refused_with_file_and_field(tmp_path, capsys, text, where):
    err = refused_by_cli(tmp_path, capsys, text)
    assert where in err, err


def test_a_site_profile_gets_the_same_checks(tmp_path, capsys):
    study = write(tmp_path / "s.yaml", BASE)
    for text, where in (("partition: debug\npoll_s: .inf\n", "poll_s: expected a finite number"),
                        ("partition: debug\nsetup: [a]\npartition: gpu\n", "line 3: duplicate key 'partition'")):
        site = write(tmp_path / "site.yaml", text)
        before = files_under(tmp_path)
        assert main(["sweep", str(study), "--executor", "slurm", "--site", str(site), "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert err == f"medaug: error: {site}: {where}" + err.split(where, 1)[1] and err.count("\n") == 1, err
        assert files_under(tmp_path) == before


# ----------------------------------------------------------------------------- item 9: duplicate keys, size

@pytest.mark.parametrize("text, line, key, first", [
    ("name: t\nbase:\n  dataset: breastmnist\n  epochs: 1\n  epochs: 50\n", 5, "epochs", 4),
    ("name: t\nname: u\nbase: {dataset: breastmnist}\n", 2, "name", 1),
    ("name: t\nbase: {dataset: breastmnist, lr: 0.1, lr: 0.2}\n", 2, "lr", 2),
    ("name: t\nbase: {dataset: breastmnist}\ngrid:\n  method:\n    a: {wrs: true}\n    b: {wrs: false}\n"
     "    a: {wrs: false}\n", 7, "a", 5),
    ("name: t\nbase: {dataset: breastmnist}\nresources:\n  cpus: 1\n  mem: 2G\n  cpus: 4\n", 6, "cpus", 4),
])
def test_a_key_written_twice_is_refused_with_file_line_and_key(tmp_path, capsys, text, line, key, first):
    err = refused_by_cli(tmp_path, capsys, text)
    assert err == (f"medaug: error: {tmp_path / 's.yaml'}: line {line}: duplicate key {key!r} (first on line "
                   f"{first}); a key may appear once per mapping")


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    s = load_study(write(tmp_path / "m.yaml", "name: t\nbase: &b {dataset: breastmnist, epochs: 3}\ngrid:\n"
                         "  method:\n    a: {<<: *b, epochs: 2}\n"))
    assert s.cells[0].spec["epochs"] == 2


def test_a_grid_of_ten_million_cells_is_refused_before_it_is_expanded(tmp_path, capsys):
    ten = lambda fmt: "[" + ", ".join(fmt.format(i) for i in range(10)) + "]"  # noqa: E731
    text = (BASE + "grid:\n"
            f"  seed: {ten('{}')}\n  lr: {ten('0.0{}1')}\n  momentum: {ten('0.{}')}\n"
            f"  batch_size: {ten('{}1')}\n  weight_decay: {ten('0.0{}')}\n  wrs: [true, false]\n"
            "  method: {" + ", ".join(f"m{i}: {{epochs: {i + 1}}}" for i in range(10)) + "}\n"
            "  size: [28, 64, 128, 224, 28]\n")
    t0 = time.perf_counter()
    err = refused_by_cli(tmp_path, capsys, text, "--dry-run")
    took = time.perf_counter() - t0
    assert (f"grid: 10,000,000 cell(s) x 1 trial(s) per cell = 10,000,000 trials; a study may have at most "
            f"{MAX_TRIALS:,} trials (MAX_TRIALS): split it into several studies") in err, err
    print(f"refused in {took:.2f} s")


def test_too_many_samples_are_refused_before_anything_is_built(tmp_path, capsys):
    err = refused_by_cli(tmp_path, capsys, BASE + "search: {lr: {uniform: [0.01, 0.1]}}\nnum_samples: 1000000000000\n")
    assert "search: 1 cell(s) x 1,000,000,000,000 trial(s) per cell" in err
    # a randint range is enumerated only once the count is known to be within the limit
    err = refused_by_cli(tmp_path, capsys, BASE + "search: {seed: {randint: [0, 4000000000]}}\n"
                         "num_samples: 4000000001\n")
    assert "search: 4,000,000,001 trials; a study may have at most" in err


# ----------------------------------------------------------------------------- item 8: duplicates merged

def test_cells_that_are_the_same_experiment_run_once_and_the_dry_run_says_so(tmp_path, capsys, tiny_root):
    path = write(tmp_path / "d.yaml", BASE + "grid:\n  method:\n    plain: {}\n    also-plain: {augmentation: none}\n"
                 "  seed: [1, 2, 1]\n")
    s = load_study(path)
    assert [c.index for c in s.cells] == [0, 1] and [c.spec["seed"] for c in s.cells] == [1, 2]
    assert [(i, kept) for i, _, kept in s.merged] == [(2, 0), (3, 0), (4, 1), (5, 0)]
    assert main(["sweep", str(path), "--dry-run", "--data-root", str(tiny_root), "--no-verify-md5",
                 "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "2 cells x 1 trial(s) per cell; 2 trials runnable" in out
    assert ("4 duplicate cell(s) merged (the same experiment runs once): cell 2 (method=plain seed=1) = cell 0; "
            "cell 3 (method=also-plain seed=1) = cell 0; cell 4 (method=also-plain seed=2) = cell 1; "
            "cell 5 (method=also-plain seed=1) = cell 0") in out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("search, samples, per_cell, note", [
    ("{batch_size: {grid: [16, 32, 16]}}", 1, 2, "search.batch_size.grid: 1 repeated value(s) merged (3 -> 2)"),
    ("{lr: {grid: [0.1, 1.0e-1, 0.2]}}", 1, 2, "search.lr.grid: 1 repeated value(s) merged (3 -> 2)"),
    ("{batch_size: {grid: [16, 32]}}", 3, 2, "num_samples 3: the search has only grid terms"),
    ("{batch_size: {choice: [16, 32]}}", 4, 2, "num_samples 4 >= the 2 distinct combination(s) of batch_size: each "
                                               "runs once instead of being sampled (2 repeat(s) per cell merged)"),
    ("{batch_size: {choice: [16, 32]}, seed: {randint: [0, 1]}, epochs: {grid: [1, 2]}}", 9, 8,
     "num_samples 9 >= the 4 distinct combination(s) of batch_size, seed"),
])
def test_a_search_that_repeats_a_spec_runs_it_once(tmp_path, capsys, tiny_root, search, samples, per_cell, note):
    path = write(tmp_path / "s.yaml", "name: t\nbase: {dataset: breastmnist}\n"
                 f"search: {search}\nnum_samples: {samples}\n")
    s = load_study(path)
    assert s.trials_per_cell == per_cell
    # every trial Tune would make is a different experiment
    import itertools

    terms = [(p.field, p.args) for p in s.search]
    assert all(p.kind == "grid" for p in s.search) and s.num_samples == 1
    run_ids = [s.spec_for(s.cells[0].spec, dict(zip([f for f, _ in terms], values))).run_id
               for values in itertools.product(*(a for _, a in terms))]
    assert len(run_ids) == len(set(run_ids)) == per_cell
    assert main(["sweep", str(path), "--dry-run", "--data-root", str(tiny_root), "--no-verify-md5",
                 "--out", str(tmp_path / "out")]) == 0
    assert f"merged: {note}" in capsys.readouterr().out


def test_a_random_search_keeps_sampling(tmp_path):
    s = load_study(write(tmp_path / "s.yaml", "name: t\nbase: {dataset: breastmnist}\n"
                         "search: {batch_size: {choice: [16, 32, 64]}, lr: {loguniform: [1.0e-3, 1.0e-1]}}\n"
                         "num_samples: 5\n"))
    assert s.num_samples == 5 and [p.kind for p in s.search] == ["choice", "loguniform"] and not s.search_merges
    s = load_study(write(tmp_path / "s.yaml", "name: t\nbase: {dataset: breastmnist}\n"
                         "search: {batch_size: {choice: [16, 32, 64]}}\nnum_samples: 2\n"))
    assert s.num_samples == 2 and s.search[0].kind == "choice"  # fewer samples than values: sampled


def test_with_fields_merges_cells_it_makes_identical():
    from medaug.sweep.study import Study  # noqa: F401 - the type with_fields returns

    repo = Path(__file__).resolve().parents[1]
    qs = load_study(repo / "sweeps" / "quickstart.yaml")
    one = qs.with_fields(seed=0)  # the seed axis collapses: 20 cells -> 4
    assert len(one.cells) == 4 and len(one.merged) == 16
