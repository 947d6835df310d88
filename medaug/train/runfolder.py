"""The run folder OUT/runs/<run_id>/ and the output folder around it.

What lives here is about files, not training: whether an output folder can take files at
all (checked before data is loaded or a network trained), the run's exclusive lock (one
process per spec at a time), and the progress log's appends (whole lines or nothing, even
on a full disk). `medaug.experiment.run` uses all three.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medaug.errors import MedaugError

RUNS_DIR = "runs"
LOCK_FILE = "lock"
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def cannot_write(path: Path, exc: OSError) -> str:
    if exc.errno in NO_SPACE_ERRNOS:
        return f"no space left writing {path}; free space and run again (training resumes from its last epoch)"
    return f"{path}: cannot write here ({exc.strerror or exc}); choose a writable output folder"


def check_out_dir(out: Path) -> None:
    """Refuse an output folder that cannot be written, before data is loaded or a network
    trained (a file in its place, or no write permission); writes nothing."""
    from medaug.store.results import RESULTS_DIR  # pyarrow: imported only when a run checks its folder

    for path in (out, out / RESULTS_DIR, out / RUNS_DIR):
        if path.exists() and not path.is_dir():
            raise MedaugError(f"{path}: exists and is not a folder; the output folder must be a writable folder")
    existing = out.absolute()
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise MedaugError(f"{existing}: is not a folder; the output folder {out} cannot be made under it")
    for path in (out / RESULTS_DIR, out / RUNS_DIR, existing):
        if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
            raise MedaugError(f"{path}: not writable; choose a writable output folder")


def append_line(path: Path, line: str, *, start_over: bool = False) -> None:
    """Append one line to `path` whole or not at all (truncating first when `start_over`).

    A failed write (a full disk) cuts the file back to where it was, so a rerun that
    resumes never appends after half a line; the failure is one MedaugError line.
    """
    data = (line + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise MedaugError(cannot_write(path, exc)) from None
    try:
        if start_over:
            os.ftruncate(fd, 0)
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise MedaugError(cannot_write(path, exc)) from None
    finally:
        os.close(fd)


@contextmanager
def claim_run(folder: Path, target: Path, *, overwrite: bool, rank: int = 0) -> Iterator[None]:
    """Hold the run's exclusive lock (OUT/runs/<run_id>/lock) while it trains and writes its row.

    A second process of the same spec (another shell, a study that lists a spec twice, a
    sweep started twice) is refused with a MedaugError naming the run, instead of training
    it again and replacing the first one's row. The lock is `flock`: the kernel releases it
    when its process ends, however it ends (kill -9, the old process of a requeued SLURM
    job), so a stale lock never needs cleaning and a rerun simply resumes. Once it holds the
    lock the run checks again for a finished row (one may have been written meanwhile) and
    that the results folder takes a file. Under torch.distributed rank 0 takes the lock for
    all ranks and tells them whether it got it, so all ranks go on or all refuse.
    """
    fd: int | None = None
    error: str | None = None
    if rank == 0:
        try:
            fd = _lock_run(folder, target, overwrite)
        except MedaugError as exc:
            error = str(exc)
    error = _from_rank0(error)
    if error is not None:
        raise MedaugError(error)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock; the file stays (removing it would race a waiting opener)


def _lock_run(folder: Path, target: Path, overwrite: bool) -> int:
    lock = folder / LOCK_FILE
    if folder.is_symlink():  # medaug never makes one: a planted link would send spec, state and log elsewhere
        raise MedaugError(f"{folder}: is a symbolic link, not a run folder; delete the link and run again")
    if lock.is_symlink() or (lock.exists() and not lock.is_file()):
        raise MedaugError(f"{lock}: is not a plain file; delete it and run again")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as exc:
        raise MedaugError(cannot_write(folder, exc)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = "".join(c for c in os.pread(fd, 100, 0).decode(errors="replace").split("\n")[0]
                             if c.isprintable())  # the file is anyone's to write: no control characters
            by = f" ({holder})" if holder else ""
            raise MedaugError(f"run {folder.name} is running in another process{by}, which holds {lock}; "
                              "wait for it to finish, or stop it and run again to resume") from None
        except OSError as exc:
            raise MedaugError(f"{lock}: cannot lock ({exc.strerror}); this file system does not support "
                              "flock, choose another output folder") from None
        if target.exists() and not overwrite:
            raise MedaugError(f"{target}: a finished result for this spec exists; pass --overwrite to replace it")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=target.parent):
                pass
        except OSError as exc:
            raise MedaugError(cannot_write(target.parent, exc)) from None
        try:  # who holds it, for the message of a refused second process
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        except OSError:
            pass
    except BaseException:
        os.close(fd)
        raise
    return fd


def _from_rank0(message: str | None) -> str | None:
    """Rank 0's `message` on every rank of a torch.distributed job (itself otherwise)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return message
    box = [message]
    dist.broadcast_object_list(box, src=0)
    return box[0]
