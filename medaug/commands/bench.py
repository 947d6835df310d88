"""`medaug bench calibrate`: measure this site's throughput, for the estimate `medaug sweep --dry-run` prints.

    medaug bench calibrate --study sweeps/quickstart.yaml          # what this study needs, as it would run here
    medaug bench calibrate --classifier cnn --classifier resnet18 --size 28 --size 64 --generator cvae
    medaug bench calibrate --site generic-gpu --device cuda --study sweeps/leroux2021.yaml   # on a compute node
    medaug bench show                                              # this machine's calibrations

Rates (images per second: training, evaluation, generator fit and sampling; seconds of a
trial's per-epoch state save and of the local executor's start-up) are measured on random
images through the real training code and added to hpc/calibration/<site>-<device>.json
(site `local` for the local executor; `$MEDAUG_CALIBRATION_DIR` or --calibration FILE
elsewhere). With --study the threads per trial and the trials at once are the study's
(--concurrent processes measure at the same time: the rates one trial sees while that many
run); run it under the conditions the study will meet (the same machine load).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from medaug.errors import MedaugError


def configure(p: argparse.ArgumentParser) -> None:
    p.description = __doc__.splitlines()[0]
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "\n".join(__doc__.splitlines()[2:])
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=type(p))
    c = sub.add_parser("calibrate", help="measure throughput on this site and device; add it to the calibration file")
    c.add_argument("--study", type=Path, default=None, help="measure what this study's cells and fits need")
    c.add_argument("--classifier", action="append", default=[], metavar="NAME", help="a classifier (repeatable)")
    c.add_argument("--size", action="append", type=int, default=[], metavar="PX", help="an image size (repeatable; "
                   "default 28)")
    c.add_argument("--recipe", action="append", default=[], metavar="NAME",
                   help="a recipe whose batch, EMA and shifts to measure with (repeatable; default seed000)")
    c.add_argument("--augmentation", action="append", default=[], metavar="NAME",
                   help="an augmentation pipeline (repeatable; default none)")
    c.add_argument("--channels", action="append", type=int, default=[], choices=(1, 3),
                   help="image channels (repeatable; default 1)")
    c.add_argument("--generator", action="append", default=[], metavar="NAME", help="a generator (repeatable)")
    c.add_argument("--site", default=None, metavar="NAME|PATH",
                   help="the SLURM site profile this machine is a node of (default: local, the local executor)")
    c.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    c.add_argument("--threads", type=int, default=None, help="threads per process (default: the study's, else 1)")
    c.add_argument("--concurrent", type=int, default=None, metavar="N",
                   help="processes measuring at once (default: the trials the study runs at once here, else 1)")
    c.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                   help="with --study: the --max-concurrent the sweep will run with")
    c.add_argument("--seconds", type=float, default=4.0, help="about how long each rate is measured (default 4)")
    c.add_argument("--no-executor-start", dest="executor_start", action="store_false",
                   help="do not time the local executor's start-up (Ray, Tune, one worker; about 20-40 s)")
    c.add_argument("--calibration", type=Path, default=None, metavar="FILE",
                   help="the file to add the rates to (default: hpc/calibration/<site>-<device>.json)")
    c.add_argument("--data-root", default=None, metavar="DIR", help="with --study: where its data are (split sizes)")
    c.add_argument("--no-verify-md5", dest="verify_md5", action="store_false", help="with --study: skip md5 checks")
    c.set_defaults(handler=calibrate_command)
    s = sub.add_parser("show", help="print the calibrations of this machine's calibration folder (or FILEs)")
    s.add_argument("files", nargs="*", type=Path, metavar="FILE")
    s.set_defaults(handler=show_command)


def calibrate_command(args: argparse.Namespace) -> int:
    from medaug.commands.common import check_device
    from medaug.sweep import calibrate as cb
    from medaug.sweep.estimate import calibration_path, run_shape, save_calibration

    check_device(args.device)
    if not 0.1 <= args.seconds <= 600:
        raise MedaugError(f"--seconds {args.seconds}: expected a number in [0.1, 600]")
    for name, value in (("--threads", args.threads), ("--concurrent", args.concurrent),
                        ("--max-concurrent", args.max_concurrent)):
        if value is not None and not 1 <= value <= 1024:
            raise MedaugError(f"{name} {value}: expected an integer in [1, 1024]")
    site = None
    if args.site is not None:
        from medaug.sweep.site import load_site

        site = load_site(args.site)
    threads, concurrent = args.threads or 1, args.concurrent or 1
    named = args.classifier or args.generator
    if args.study is not None:
        from medaug.sweep.study import load_study

        study = load_study(args.study)
        shape = run_shape(study, "slurm" if site else "local", site, args.max_concurrent,
                          None if args.device == "auto" else args.device)
        threads, concurrent = args.threads or shape.threads, args.concurrent or (1 if site else shape.concurrency)
        classifiers, generators = cb.targets_from_study(study, data_root=args.data_root, verify_md5=args.verify_md5)
        if named:  # only the named ones among the study's
            classifiers = [t for t in classifiers if not args.classifier or t.classifier in args.classifier]
            generators = [g for g in generators if not args.generator or g.generator in args.generator]
        if args.size:
            classifiers = [t for t in classifiers if t.size in args.size]
            generators = [g for g in generators if g.size in args.size]
    elif named:
        classifiers, generators = cb.targets_from_names(args.classifier, args.size or [28], args.recipe or ["seed000"],
                                                        args.augmentation or ["none"], args.channels or [1],
                                                        args.generator)
    else:
        raise MedaugError("bench calibrate: name what to measure: --study STUDY.yaml, or --classifier / --generator")
    if not classifiers and not generators:
        raise MedaugError("bench calibrate: nothing left to measure (the filters leave no classifier or generator)")
    cores = os.cpu_count() or 1
    if threads * concurrent > cores:
        print(f"note: {concurrent} process(es) x {threads} thread(s) exceed the {cores} core(s) here; the rates are "
              "those of so crowded a machine", file=sys.stderr)
    site_name = site.name if site is not None else "local"
    say = lambda text: print(f"[calibrate] {text}", file=sys.stderr, flush=True)
    say(f"{len(classifiers)} classifier and {len(generators)} generator target(s), {concurrent} process(es) x "
        f"{threads} thread(s), about {args.seconds:g} s per rate")
    cal = cb.calibrate(classifiers, generators, site=site_name, device=None if args.device == "auto" else args.device,
                       threads=threads, concurrent=concurrent, seconds=args.seconds,
                       executor_start=args.executor_start and site is None, say=say)
    path = save_calibration(cal, args.calibration or calibration_path(site_name, cal.device))
    print(cb.summary(cal))
    print(f"calibration: {path}")
    return 0


def show_command(args: argparse.Namespace) -> int:
    from medaug.sweep.calibrate import summary
    from medaug.sweep.estimate import calibration_dir, load_calibration

    files = args.files or sorted(calibration_dir().glob("*.json"))
    if not files:
        print(f"no calibrations in {calibration_dir()}: run medaug bench calibrate")
        return 0
    for f in files:
        cal = load_calibration(f)
        print(f"{f} (measured {cal.measured_at})")
        print(summary(cal))
    return 0
