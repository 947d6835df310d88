"""Studies at scale: a YAML study expands to many ExperimentSpecs; Ray Tune drives them.

- `study.py`    the study format (grid, search space, scheduler, resources), validated
- `site.py`     SLURM site profiles (`hpc/sites/*.yaml`), container command lines
- `driver.py`   `run_study(...)`: Ray Tune over the trials; resume, failures, outcome
- `local.py`    executor `local`: trials in Ray workers
- `slurm.py`    executor `slurm`: one SLURM job per trial via submitit, requeue-safe
- `progress.py` the progress display
- `commands.py` `medaug sweep`

Nothing below this package knows about Ray or SLURM: trials call
`medaug.experiment.run`.
"""

from medaug.sweep.driver import StudyOutcome, run_study
from medaug.sweep.study import Study, load_study

__all__ = ["Study", "StudyOutcome", "load_study", "run_study"]
