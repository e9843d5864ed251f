"""Output files: every output path goes through atomic_path. It is locked
against a second run (exit 75), checked against replacing what vecpipe did not
make (exit 73), its missing parent folders are made, and it is written under a
temporary name that is renamed onto the final one only when the block completes.
stdout is always used as a binary stream."""
from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from pathlib import Path

from vecpipe.core.io.env import current
from vecpipe.core.errors import CannotCreateError, LockedError, OutputError, UsageError
from vecpipe.core.io.compression import compression_by_name


def is_special_output(path) -> bool:
    """A device, FIFO or socket (-o /dev/null, a named pipe, /dev/stdout): written
    straight into, never replaced; only formats that stream can go there."""
    if path in (None, "-"):
        return False
    try:
        mode = os.stat(path).st_mode  # follows links: /dev/stdout is the pipe or tty behind it
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_output(path, *, folder: bool = False, replaceable=None) -> None:
    """Refuse (CannotCreateError, exit 73) an output that would replace what
    vecpipe did not make. A file output replaces a file, never a folder. A folder
    output (vecdir) goes where nothing is, into an empty folder, or over a folder
    that `replaceable(path)` accepts (it returns None, or why not). A device or
    FIFO takes a file, never a folder (UsageError)."""
    _refuse_folder_name(path, folder)
    if is_special_output(path):
        if folder:
            raise UsageError(f"{path}: a vecdir is a folder and cannot be written into a device or pipe; "
                             "pick a file format with --to (e.g. word2vec)")
        return
    target = Path(os.path.realpath(path))
    if folder and target.is_file():
        raise CannotCreateError(f"{path}: is a file; a folder would replace it (remove it or pick another name)")
    if not target.is_dir():
        return
    if not folder:
        raise CannotCreateError(f"{path}: is a folder; vecpipe writes a file here and never replaces a folder "
                                "(remove it or pick another name)")
    if not any(target.iterdir()):
        return
    why = replaceable(target) if replaceable is not None else "it is not empty"
    if why:
        raise CannotCreateError(f"{path}: {why}; vecpipe will not replace it (remove it or pick another name)")


def _refuse_folder_name(path, folder: bool) -> None:
    """`-o results/` names a folder (as cp and mv read the slash): a file output is not written as `results`."""
    if not folder and str(path).endswith(("/", os.sep)):
        raise CannotCreateError(f"{path}: names a folder (the trailing slash), but this output is a file; "
                                "give a file name")


def check_distinct(outputs: dict) -> None:
    """The outputs of one run ({option: path}) must be distinct files (UsageError);
    stdout and devices such as /dev/null may repeat."""
    seen: dict[str, str] = {}
    for option, path in outputs.items():
        if path in (None, "-") or is_special_output(path):
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise UsageError(f"{seen[real]} and {option} name the same file ({path}); give each its own")
        seen[real] = option


def check_not_inputs(outputs: dict, inputs) -> None:
    """No output ({option: path}) may be one of the run's input files
    (UsageError): renaming the result onto it would replace the data read."""
    read = {}
    for p in inputs:
        with contextlib.suppress(OSError, TypeError):
            st = os.stat(p) if p not in (None, "-") else None
            if st is not None and stat.S_ISREG(st.st_mode):
                read.setdefault((st.st_dev, st.st_ino), p)
    for option, path in outputs.items():
        if path in (None, "-"):
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in read:
            raise UsageError(f"{option} {path} is also an input ({read[st.st_dev, st.st_ino]}): the output would "
                             "replace it; give the output another name")


def make_parents(path) -> list[Path]:
    """Make the missing folders above an output (as mkdir -p); returns those it
    made, outermost first, so a failed run can remove exactly those."""
    parent = Path(os.path.abspath(path)).parent
    missing = []
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    made = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir():
                remove_made(made)
                raise CannotCreateError(f"{path}: cannot create it: {folder} is not a folder") from None
        except OSError as exc:
            remove_made(made)
            raise CannotCreateError(f"{path}: cannot create the folder {folder}: {exc.strerror or exc}") from None
        else:
            made.append(folder)
    if not parent.is_dir() and not missing:
        raise CannotCreateError(f"{path}: cannot create it: {parent} is not a folder")
    return made


def remove_made(made: list[Path]) -> None:
    """Remove the folders make_parents made, if they are still empty."""
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if still empty


_held_locks: dict[str, list] = {}  # lock path -> [open file, depth]: one run may lock a path twice


@contextlib.contextmanager
def lock_output(path):
    """Hold `.NAME.lock` beside an output for the block: a second run on the
    same output stops with LockedError (exit 75). The same lock as --resume's."""
    if path in (None, "-") or is_special_output(path):
        yield
        return
    lock_path = _lock_path(path)
    key = str(lock_path)
    if key in _held_locks:
        _held_locks[key][1] += 1
        try:
            yield
        finally:
            _held_locks[key][1] -= 1
        return
    fh = acquire_lock(lock_path, path)
    _held_locks[key] = [fh, 1]
    try:
        yield
    finally:
        del _held_locks[key]
        with contextlib.suppress(FileNotFoundError):
            lock_path.unlink()
        fh.close()


def _lock_path(path) -> Path:
    target = Path(os.path.realpath(path))
    return target.with_name(f".{target.name}.lock")


def acquire_lock(lock_path: Path, shown):
    """Open and flock `lock_path` (LockedError if another process holds it); the
    open file holds the lock, with this pid written in it."""
    import fcntl

    while True:
        try:
            fh = open(lock_path, "a+")
        except OSError as exc:
            # the lock is the first file made beside the output: name the folder, not vecpipe's lock file
            raise CannotCreateError(f"{shown}: cannot create files in {lock_path.parent}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _locked_error(fh, shown) from None
        try:
            same = os.fstat(fh.fileno()).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else the holder removed the file as we opened it: take the new one
            break
        fh.close()
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def _locked_error(fh, shown) -> LockedError:
    fh.seek(0)
    holder = fh.read().strip() or "another process"
    fh.close()
    return LockedError(f"{shown} is being written by another vecpipe run (pid {holder}); try again later")


def check_unlocked(path) -> None:
    """LockedError now when another run holds `path`'s lock: a command that
    loads a model first would otherwise find out only after the load. Takes
    nothing (the writer locks the output when it opens it)."""
    import fcntl

    if path in (None, "-") or is_special_output(path):
        return
    lock_path = _lock_path(path)
    if str(lock_path) in _held_locks:
        return
    try:
        fh = open(lock_path)
    except OSError:
        return  # no lock file: no run holds it
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _locked_error(fh, path) from None
    fh.close()  # closing releases the probe's lock


@contextlib.contextmanager
def atomic_path(path, *, suffix: str = "", folder: bool = False, replaceable=None):
    """Yield a temporary path beside `path`; rename it onto `path` only if the
    block completes. On any error or interrupt the temporary is removed, so no
    half-written file ever carries the final name. `folder=True` for outputs
    that are folders (see check_output for what may be replaced)."""
    if is_special_output(path):
        check_output(path, folder=folder)
        yield Path(path)
        return
    _refuse_folder_name(path, folder)  # before Path() drops the slash
    target = Path(path)
    if target.is_symlink():
        target = Path(os.path.realpath(target))  # replace the file the link points to, keep the link
    check_output(target, folder=folder, replaceable=replaceable)
    made = make_parents(target)
    ok = False
    try:
        with lock_output(target):
            _remove_stale_temporaries(target)
            try:
                tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
            except OSError as exc:
                raise CannotCreateError(f"{path}: cannot create it: {exc.strerror or exc}") from None
            try:
                yield tmp / ("out" + suffix)
                check_output(target, folder=folder, replaceable=replaceable)
                _replace(tmp / ("out" + suffix), target)
                ok = True
            finally:
                _remove(tmp)
    finally:
        if not ok:
            remove_made(made)


def unnamed_temporary(prefix: str, suffix: str = "", dir=None) -> tuple[int, str, str | None]:
    """A temporary file that can be opened again by path and goes with the
    process, even one killed by SIGKILL: where a process can reopen its own
    open files by /proc/self/fd/N (Linux), its name is removed at once.
    Returns (the open fd, the path to open it by, the name the caller must
    remove afterwards, or None)."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)
    if os.path.isdir("/proc/self/fd"):
        os.unlink(name)
        return fd, f"/proc/self/fd/{fd}", None
    return fd, name, name  # pragma: no cover - not Linux


_MKDTEMP_NAME = re.compile(r"[a-z0-9_]{8}")  # tempfile's random part


def _remove_stale_temporaries(target: Path) -> None:
    """Remove the temporary folders a killed run (kill -9, a lost machine) left
    beside `target`. Called under the output's lock, which no live writer of
    `target` holds: every folder made as atomic_path makes them (its name
    pattern, nothing in it but the `out` output) is a dead run's."""
    prefix = f".{target.name}."
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")
                and _MKDTEMP_NAME.fullmatch(name[len(prefix):-len(".tmp")])):
            continue
        try:
            if entry.is_dir(follow_symlinks=False) and all(c.startswith("out") for c in os.listdir(entry.path)):
                _remove(Path(entry.path))
        except OSError:
            continue


def _replace(src: Path, dst: Path) -> None:
    if dst.is_dir() and not dst.is_symlink() and any(dst.iterdir()):
        # a folder cannot be renamed over a non-empty folder: swap, then drop the
        # old one (check_output allowed it: a vecpipe output of the same kind)
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
        os.replace(src, dst)
        _remove(old)
    else:
        os.replace(src, dst)


def _remove(p: Path) -> None:
    import shutil

    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _is_broken_pipe(exc: OSError) -> bool:
    return isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE


@contextlib.contextmanager
def open_output(path, *, compress_by_suffix: bool = True):
    """Binary output: '-' or None is stdout; a path is written atomically and
    compressed when it ends in .gz/.bz2/.xz."""
    if path in (None, "-"):
        out = current().stdout
        yield out
        out.flush()
        return
    kind = compression_by_name(path) if compress_by_suffix else None
    if kind == "zip":
        raise UsageError(f"{path}: writing .zip is not supported; use .gz, .bz2 or .xz")
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as raw:
                if kind is None:
                    yield raw
                else:
                    opener = {"gz": "gzip", "bz2": "bz2", "xz": "lzma"}[kind]
                    mod = __import__(opener)
                    with mod.open(raw, "wb") as zf:
                        yield zf
        except OSError as exc:
            if _is_broken_pipe(exc):
                raise BrokenPipeError(errno.EPIPE, "Broken pipe") from exc
            raise OutputError(f"{path}: {exc.strerror or exc}") from exc
