"""Safe archive extraction: members land only inside their target folder
(absolute paths, `..`, links that point outside, devices and fifos are
refused), and nothing is extracted when it would not fit on the disk."""
from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from vecpipe.core.errors import DataError, OutputError
from vecpipe.core.fetch.schema import EXTRACTED

log = logging.getLogger("vecpipe")


def _inside(root: Path, target: Path) -> bool:
    try:
        target.relative_to(root)
        return True
    except ValueError:
        return False


def _safe_member_path(root: Path, name: str, archive: str) -> Path:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"archive member {name!r} has an absolute path; refusing to extract", archive)
    if ".." in pure.parts:
        raise DataError(f"archive member {name!r} points outside the target folder; refusing to extract", archive)
    target = (root / Path(*pure.parts)).resolve() if pure.parts else root
    if not _inside(root, target):
        raise DataError(f"archive member {name!r} points outside the target folder; refusing to extract", archive)
    return target


def check_archive(archive: Path, kind: str, root: Path) -> int:
    """Refuse an archive with members that would land outside `root` (absolute
    paths, `..`, links pointing out) or that are devices/fifos. Returns the
    bytes its files unpack to (the extractors never write more than that)."""
    root = root.resolve()
    name = str(archive)
    total = 0
    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _safe_member_path(root, info.filename, name)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise DataError(f"zip member {info.filename!r} is a symbolic link; refusing to extract", name)
                total += info.file_size
        return total
    try:
        with tarfile.open(archive, "r:*") as tf:
            for m in tf:
                target = _safe_member_path(root, m.name, name)
                total += m.size if m.isfile() else 0
                if m.issym() or m.islnk():
                    link = m.linkname.replace("\\", "/")
                    if PurePosixPath(link).is_absolute():
                        raise DataError(f"archive link {m.name!r} -> {m.linkname!r} is absolute; refusing to extract", name)
                    base = target.parent if m.issym() else root
                    dest = (base / Path(*PurePosixPath(link).parts)).resolve() if link else base
                    if not _inside(root, dest):
                        raise DataError(f"archive link {m.name!r} -> {m.linkname!r} points outside the target folder; "
                                        "refusing to extract", name)
                elif not (m.isfile() or m.isdir()):
                    raise DataError(f"archive member {m.name!r} is a device or fifo; refusing to extract", name)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"not a complete tar archive ({exc}); truncated download?", name) from None
    return total


def safe_extract(archive: Path, kind: str, dest: Path) -> None:
    """Extract `archive` (tar, tar.gz or zip) into the new folder `dest`, after
    check_archive; `dest` appears only when extraction is complete."""
    dest = Path(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        need = check_archive(archive, kind, tmp)
        free = shutil.disk_usage(tmp).free
        if need > free:
            raise OutputError(f"{archive}: unpacks to {need} bytes but only {free} are free in {dest.parent}; "
                              "nothing was extracted (the download is kept: free some space and fetch again)")
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                try:
                    zf.extractall(tmp)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise DataError(f"cannot extract ({exc}); damaged archive?", archive) from None
        else:
            with tarfile.open(archive, "r:*") as tf:
                try:
                    if hasattr(tarfile, "data_filter"):
                        tf.extractall(tmp, filter="data")
                    else:  # pragma: no cover - Python without extraction filters; members were checked above
                        tf.extractall(tmp)
                except (tarfile.TarError, EOFError, OSError) as exc:
                    raise DataError(f"cannot extract ({exc}); truncated or damaged archive?", archive) from None
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def find_member(folder: Path, member: str | None) -> str:
    """Relative path (to the entry folder) of what an extracted archive offers:
    the catalog's member, else the only file inside, else the folder."""
    if member and (folder / member).is_file():
        return f"{EXTRACTED}/{member}"
    files = [p for p in folder.rglob("*") if p.is_file()]
    if member:
        log.warning("the archive has no %s; using %s", member, "its only file" if len(files) == 1 else "the extracted folder")
    if len(files) == 1:
        return f"{EXTRACTED}/{files[0].relative_to(folder).as_posix()}"
    return EXTRACTED
