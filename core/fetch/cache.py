"""The vecpipe cache folder of an entry: one fetch at a time (a lock), verified
files moved (or archives extracted) into place, manifest.json written last, and
hand-downloaded files registered with --from.

The file is renamed into place, then manifest.json is written: an interrupted
fetch never leaves something resolve_local would trust."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from vecpipe import __version__
from vecpipe.core.errors import DataError, NoInputError, OutputError, UsageError
from vecpipe.core.fetch import catalog
from vecpipe.core.fetch.archives import find_member, safe_extract
from vecpipe.core.fetch.catalog import Entry
from vecpipe.core.fetch.schema import EXTRACTED, MANIFEST, VECDIR, file_name_problem
from vecpipe.core.fetch.verify import file_compression, sha256_file, verify
from vecpipe.core.io.compression import strip_compression_suffix

if TYPE_CHECKING:  # fetch.py imports this module
    from vecpipe.core.fetch.fetch import FetchOptions

log = logging.getLogger("vecpipe")


@contextlib.contextmanager
def locked(e: Entry):
    """One fetch per entry at a time (another vecpipe fetching the same name
    waits). Creates the entry's folder, and removes it again if the fetch
    failed and left nothing in it (no partial download to resume)."""
    folder = catalog.entry_dir(e)
    locks = catalog.cache_root() / ".locks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        locks.mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the cache folder ({exc.strerror or exc}); set $VECPIPE_HOME") from None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        fcntl = None
    with open(locks / f"{e.name}.lock", "a+") as fh:
        if fcntl is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "?"
                log.warning("%s: another vecpipe (pid %s) is fetching it; waiting", e.name, holder)
                fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
        try:
            yield folder
        finally:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds when empty
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)


def write_manifest(e: Entry, rel: str, **info) -> None:
    folder = catalog.entry_dir(e)
    data = {"name": e.name, "kind": e.kind, "format": e.format, "path": rel,
            "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "vecpipe": __version__, **info}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def install(e: Entry, staged: Path, filename: str, **info) -> Path:
    """Move a verified file into the entry's folder (extracting archives) and
    write the manifest last. Returns resolve_local's answer."""
    folder = catalog.entry_dir(e)
    previous = catalog.read_manifest(e)
    (folder / MANIFEST).unlink(missing_ok=True)  # replacing: the old state is not trusted meanwhile
    # what vecpipe made from the file being replaced: -m NAME must not keep using it
    shutil.rmtree(folder / VECDIR, ignore_errors=True)
    old = previous.get("path") if previous else None
    if isinstance(old, str) and old != filename and not file_name_problem(old) and (folder / old).is_file():
        (folder / old).unlink()  # the replaced file under another name (--from a file compressed otherwise)
    if e.archive:
        extracted = folder / EXTRACTED
        try:
            safe_extract(staged, e.archive, extracted)
        except DataError as exc:
            staged.unlink(missing_ok=True)
            raise DataError(f"{e.name}: {exc}; the archive was deleted, nothing entered the cache") from None
        rel = find_member(extracted, e.member)
        archive_sha = info.pop("sha256", None)
        staged.unlink(missing_ok=True)  # the extracted copy is what is used; do not keep both
        write_manifest(e, rel, archive=filename, archive_sha256=archive_sha, **info)
    else:
        final = folder / filename
        if staged != final:
            os.replace(staged, final)
        write_manifest(e, filename, **info)
    return catalog.resolve_local(e)


def register_file(e: Entry, src, opts: FetchOptions | None = None) -> Path:
    """`--from FILE`: put a hand-downloaded file into the cache for entry `e`,
    checked against the catalog's sha256 when known. The original stays where
    it is; the cache gets a copy (never a link: a later edit of the original
    must not change a verified cache file behind its manifest)."""
    src = Path(src)
    if e.on_hub:
        raise UsageError(f"{e.name} is a Hugging Face {e.hf_repo_type}: it lives in the Hugging Face cache; "
                         f"fetch it with `vecpipe fetch {e.name}` (HF_ENDPOINT selects a mirror)")
    if not src.exists():
        raise NoInputError(f"{src}: no such file")
    if not src.is_file():
        raise UsageError(f"{src}: --from takes a file")
    with locked(e) as folder:
        filename = e.cache_filename
        kind = file_compression(src)
        if not e.sha256 and not e.archive:
            # keep the user's compression: name the cache file after what it really is
            filename = strip_compression_suffix(filename) + ("." + kind if kind else "")
        staging = folder / (filename + ".from")
        staging.unlink(missing_ok=True)
        try:
            try:
                shutil.copyfile(src, staging)
            except OSError as exc:
                raise OutputError(f"{staging}: cannot copy {src} into the cache ({exc.strerror or exc})") from None
            try:
                how = verify(e, staging, "the file", shown=src)
            except DataError as exc:
                hint = " (the checksum is of the file as published, e.g. still compressed)" if e.sha256 else ""
                raise DataError(str(exc) + hint) from None
            if how == "none":
                log.warning("%s: no checksum is known; %s registered as it is", e.name, src)
            size = staging.stat().st_size
            sha = e.sha256 or sha256_file(staging, e.name)
            path = install(e, staging, filename, url=f"file://{src.resolve()}", sha256=sha, size=size, verified=how)
        finally:
            staging.unlink(missing_ok=True)  # gone on success (moved or extracted); never left behind on failure
    log.info("%s: registered %s as %s", e.name, src, path)
    return path
