"""Write files whole or not at all: write to a temporary name beside, then rename.

Every file medaug writes into an output folder (result rows, specs, training state,
figures, reports) goes through `atomic_path`, so three promises hold in one place:

* a reader sees the old file or the new one, never a part (temporary + fsync + rename);
* the file gets the mode any program would give it, 0666 & ~umask (a shared cluster's
  group can read a study's rows), not the 0600 of `tempfile.mkstemp`;
* a full disk (ENOSPC, or EDQUOT for a full quota) is one line, "no space left writing
  X" (MedaugError, exit 2), with the temporary removed and the target untouched. Some
  writers do not report the errno (torch.save raises a bare RuntimeError when its stream
  fails), so when a writer fails the folder is probed for room for one more block.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from medaug.errors import MedaugError

#: errno values meaning "the file system (or this user's quota) is full".
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: Bytes the full-disk probe tries to add to a failed temporary file.
PROBE_BYTES = 4096


def is_no_space(exc: BaseException) -> bool:
    """True if `exc`, or an exception it was raised from, is ENOSPC/EDQUOT."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def no_space_error(target: str | Path) -> MedaugError:
    return MedaugError(f"no space left writing {target} (nothing written; free space and rerun)")


def disk_full(path: str | Path) -> bool:
    """Whether one more block cannot be added to the existing file `path` (the disk is full).

    Used after a writer failed without an errno: the partial file still holds the
    space it took, so on a full disk appending a block (and syncing it, for file systems
    that allocate late) fails with ENOSPC/EDQUOT.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError:
        return False
    try:
        os.write(fd, b"\0" * PROBE_BYTES)
        os.fsync(fd)
    except OSError as exc:
        return exc.errno in NO_SPACE_ERRNOS
    finally:
        os.close(fd)
    return False


def _create_temp(folder: Path, name: str) -> Path:
    """A new empty file `.NAME.<random>.tmp` in `folder`, mode 0666 & ~umask."""
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def _folder_error(target: Path, exc: OSError) -> MedaugError:
    """One line for a target whose folder cannot hold it (a file in the way, read-only, no permission)."""
    if exc.errno in NO_SPACE_ERRNOS:
        return no_space_error(target)
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return MedaugError(f"cannot write {target}: a file is in the way of its folder {target.parent}")
    return MedaugError(f"cannot write {target}: {exc.strerror or exc} ({exc.filename or target.parent})")


def check_writable(target: str | Path, *, what: str = "output") -> Path:
    """Refuse (MedaugError) a file path that cannot be written, before any work is done.

    The target must not be a folder, its nearest existing ancestor must be a folder
    (not a file: `--out existing_file/m.png`), and that folder must be writable.
    Nothing is created.
    """
    target = Path(target).expanduser()
    if target.is_dir():
        raise MedaugError(f"{what} {target}: is a folder; expected a file path")
    parent = target.parent
    while not parent.exists():
        if parent.is_symlink():  # a dangling link: mkdir would fail on it
            raise MedaugError(f"{what} {target}: {parent} is a broken symbolic link")
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise MedaugError(f"{what} {target}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MedaugError(f"{what} {target}: folder {parent} is not writable")
    return target


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename onto the target on success.

    On error the temporary file is removed and the target is left untouched; a full disk
    becomes MedaugError("no space left writing TARGET"), and a folder that cannot be
    made or written (a file in the way, no permission, read-only) a one-line MedaugError.
    The file ends with mode 0666 & ~umask, folders made on the way 0777 & ~umask.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = _create_temp(target.parent, target.name)
    except OSError as exc:
        raise _folder_error(target, exc) from None
    try:
        try:
            yield tmp_path
        except Exception as exc:
            if is_no_space(exc) or (tmp_path.exists() and disk_full(tmp_path)):
                raise no_space_error(target) from None
            raise
        try:
            with open(tmp_path, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp_path, target)
        except OSError as exc:
            if exc.errno in NO_SPACE_ERRNOS:
                raise no_space_error(target) from None
            raise
        _sync_folder(target.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _sync_folder(folder: Path) -> None:
    """fsync a folder so that a rename in it survives a crash (best effort: not all systems allow it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def atomic_write(target: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` and rename the result onto `target`."""
    with atomic_path(target) as tmp:
        write(tmp)
