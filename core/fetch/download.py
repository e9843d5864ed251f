"""Getting catalog entries onto this machine: resumable, checksummed, atomic
HTTP(S) downloads into the vecpipe cache, safe archive extraction, hand-made
downloads registered with --from, Hugging Face models through huggingface_hub,
and the one-time conversion of word vectors into a vecdir.

Rules kept here:
- HTTPS only (also across redirects) unless the caller allows plain HTTP.
- A partial download lives beside its final place as `<file>.part` and is
  resumed with an HTTP Range request; a server that ignores Range restarts it.
- Nothing enters the cache before it is verified: by the catalog's sha256 when
  known (a mismatch deletes the partial and says so), else by its size when
  known and by reading compressed streams (.bz2/.gz/.xz/.zip/.tar.gz) to their
  end, so a truncated file never passes as complete.
- The file is renamed into place, then manifest.json is written: an
  interrupted fetch never leaves something resolve_local would trust.
- Archives are extracted only inside their target folder: absolute paths,
  `..`, links that point outside, devices and fifos are refused.
- Timeouts on every socket operation; retries with exponential backoff; a
  clear "offline?" message when no host can be reached.
- Nothing downloaded is ever unpickled.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from vecpipe import __version__
from vecpipe.core.fetch import catalog
from vecpipe.core.fetch.catalog import EXTRACTED, MANIFEST, VECDIR, Entry
from vecpipe.core.errors import DataError, NoInputError, OutputError, UnavailableError, UsageError
from vecpipe.core.io.progress import progress

log = logging.getLogger("vecpipe")

CHUNK = 1 << 20
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
# what sentence-transformers never needs: other frameworks' weights and exports
HF_IGNORE = ["*.h5", "*.msgpack", "*.ot", "tf_model*", "flax_model*", "rust_model*", "*.onnx", "onnx/*",
             "openvino/*", "coreml/*", "*.tflite"]


@dataclass
class FetchOptions:
    allow_http: bool = False
    timeout: float = 30.0      # seconds, per socket operation
    retries: int = 4           # per mirror, tries in a row that bring no new byte (beyond the best offset yet)
    backoff: float = 1.0       # seconds before the first retry; doubles each time, at most 60
    max_time: float | None = None  # seconds for the whole fetch of one entry (None: no limit)
    offline: bool | None = None  # None: $VECPIPE_OFFLINE decides


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def is_offline(opts: FetchOptions) -> bool:
    return opts.offline if opts.offline is not None else _truthy(os.environ.get("VECPIPE_OFFLINE"))


# ---------------------------------------------------------------- HTTP


class _Retry(Exception):
    """A transient failure: try the same URL again after a pause."""

    def __init__(self, reason: str, network: bool = False, restarted: bool = False):
        super().__init__(reason)
        self.network = network  # the host could not be reached at all
        self.restarted = restarted  # the server ignored Range: this try started again at byte 0


class _Skip(Exception):
    """A permanent failure of one URL (404, retries used up...): try the next mirror."""

    def __init__(self, reason: str, network: bool = False):
        super().__init__(reason)
        self.network = network


def check_url(url: str, allow_http: bool) -> None:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme == "https":
        return
    if scheme == "http":
        if allow_http:
            return
        raise UsageError(f"{url}: plain HTTP is refused (no integrity in transit); pass --allow-http to accept it")
    raise UsageError(f"{url}: only https:// URLs are fetched (http:// with --allow-http)")


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    def __init__(self, allow_http: bool):
        self.allow_http = allow_http

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl, self.allow_http)  # an https URL may not redirect to plain http
        return super().redirect_request(req, fp, code, msg, headers, newurl)  # keeps the Range header


def _open(url: str, start: int, opts: FetchOptions, timeout: float):
    headers = {"User-Agent": f"vecpipe/{__version__}", "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    req = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(_RedirectHandler(opts.allow_http))
    return opener.open(req, timeout=timeout)


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """'bytes 100-199/1000' -> (100, 1000); 'bytes */1000' -> (None, 1000)."""
    if not value or not value.lower().startswith("bytes "):
        return None, None
    spec = value[6:].strip()
    rng, _, total = spec.partition("/")
    start = int(rng.split("-", 1)[0]) if rng and rng != "*" and rng.split("-", 1)[0].isdigit() else None
    return start, int(total) if total.isdigit() else None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, socket.gaierror):
        return "host name not found (offline?)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    return str(exc) or type(exc).__name__


def _max_time_error(desc: str, opts: FetchOptions, part: Path) -> UnavailableError:
    have = part.stat().st_size if part.exists() else 0
    kept = f"; the {have} bytes received are kept in {part}: run again to resume" if have else ""
    return UnavailableError(f"{desc}: --max-time {opts.max_time:g}s reached{kept}")


def _download_once(url: str, part: Path, opts: FetchOptions, desc: str, expected: int | None = None,
                   deadline: float | None = None) -> int:
    """One request: resume `part` from its current size. Returns the final size
    when the body is complete; raises _Retry or _Skip otherwise. Never reads
    more than `expected` bytes (the catalog's size), nor past `deadline`."""
    have = part.stat().st_size if part.exists() else 0
    timeout = opts.timeout
    if deadline is not None:
        timeout = max(min(timeout, deadline - time.monotonic()), 0.05)
    try:
        resp = _open(url, have, opts, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            _, total = _content_range(exc.headers.get("Content-Range"))
            if total == have:
                return have  # the partial was already complete
            part.unlink()
            raise _Retry(f"the server refused to resume at byte {have}; starting again") from None
        if exc.code in RETRYABLE_STATUS:
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
        raise _Skip(f"HTTP {exc.code} {exc.reason}") from None
    except UsageError:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Retry(_describe(exc), network=True) from None
    restarted = False
    with resp:
        status = getattr(resp, "status", 200)
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if have and status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != have:
                part.unlink()
                raise _Retry(f"the server resumed at byte {start}, not {have}; starting again")
            if total is None and length is not None:
                total = have + length
            mode = "ab"
            log.info("%s: resuming at byte %d", desc, have)
        else:
            if have:
                log.info("%s: the server does not resume downloads; starting again", desc)
                restarted = True
            have, mode, total = 0, "wb", length
        if expected is not None and total is not None and total != expected:
            _unlink(part)  # what is there belongs to another file
            raise _Skip(f"the server announces {total} bytes, the catalog says {expected}")
        limit = expected if expected is not None else total
        received = 0
        bar = progress(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False)
        try:
            with open(part, mode) as fh:
                while True:
                    # one byte past the limit is enough to know the body is too long
                    want = CHUNK if limit is None else min(CHUNK, limit - have - received + 1)
                    try:
                        chunk = resp.read(want)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Retry(f"connection lost: {_describe(exc)}", restarted=restarted) from None
                    if not chunk:
                        break
                    fh.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                    if limit is not None and have + received > limit:
                        fh.close()
                        _unlink(part)
                        what = "the catalog declares" if expected is not None else "it announced"
                        raise _Skip(f"the server sends more than the {limit} bytes {what}; stopped reading")
                    if deadline is not None and time.monotonic() > deadline:
                        fh.close()
                        raise _max_time_error(desc, opts, part)
        except OSError as exc:
            raise OutputError(f"{part}: {exc.strerror or exc}") from None
        finally:
            bar.close()
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Retry(f"connection closed after {size} of {total} bytes", restarted=restarted)
    if total is not None and size > total:
        part.unlink()
        raise _Retry(f"received {size} bytes but the server announced {total}; starting again")
    return size


def download_url(url: str, part: Path, opts: FetchOptions, desc: str, expected: int | None = None,
                 deadline: float | None = None) -> int:
    """Download one URL into `part`, resuming and retrying with backoff. Bounded
    whatever the server does: `opts.retries` tries in a row without a byte beyond
    the furthest offset ever reached, 5 * (retries + 1) tries in all, and the deadline."""
    check_url(url, opts.allow_http)
    best = part.stat().st_size if part.exists() else 0
    failures, tries, max_tries = 0, 0, 5 * (opts.retries + 1)
    while True:
        tries += 1
        try:
            return _download_once(url, part, opts, desc, expected, deadline)
        except _Retry as exc:
            size = part.stat().st_size if part.exists() else 0
            # only bytes beyond the best offset ever reached count as progress: a server
            # that ignores Range and always hangs up at the same place makes none
            failures = 1 if size > best else failures + 1
            best = max(best, size)
            if failures > opts.retries or tries >= max_tries:
                hint = " (the server ignores Range requests: each try starts again at byte 0)" if exc.restarted else ""
                raise _Skip(f"gave up after {tries} {'try' if tries == 1 else 'tries'}: {exc}{hint}",
                            network=exc.network) from None
            pause = min(opts.backoff * (2 ** (failures - 1)), 60.0)
            if deadline is not None and time.monotonic() + pause >= deadline:
                raise _max_time_error(desc, opts, part) from None
            log.warning("%s: %s; retrying in %.1fs (%d/%d)", desc, exc, pause, failures, opts.retries)
            time.sleep(pause)


def download(urls, part: Path, opts: FetchOptions, desc: str, expected: int | None = None) -> str:
    """Try each mirror in turn; returns the URL that delivered the file. Never
    reads more than `expected` bytes (the catalog's size) from any of them."""
    if is_offline(opts):
        raise UnavailableError(f"{desc}: offline mode ($VECPIPE_OFFLINE is set) and it is not in the cache")
    deadline = time.monotonic() + opts.max_time if opts.max_time else None
    usable = []
    for url in urls:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if scheme == "http" and not opts.allow_http:
            log.info("%s: skipping the plain-HTTP mirror %s (use --allow-http to accept it)", desc, url)
            continue
        usable.append(url)
    if not usable:
        if urls:
            raise UsageError(f"{desc}: its only mirrors are plain HTTP ({', '.join(urls)}); "
                             "pass --allow-http to accept them")
        raise UnavailableError(f"{desc}: no download URL")
    failures, unreachable = [], True
    for url in usable:
        try:
            download_url(url, part, opts, desc, expected, deadline)
            return url
        except _Skip as exc:
            failures.append(f"{url}: {exc}")
            unreachable = unreachable and exc.network
            if len(usable) > 1:
                log.warning("%s: %s failed: %s", desc, url, exc)
    if unreachable:
        raise UnavailableError(f"{desc}: cannot reach any mirror; offline? ({'; '.join(failures)})")
    raise UnavailableError(f"{desc}: could not download from any mirror: " + "; ".join(failures))


# ---------------------------------------------------------------- verification


def sha256_file(path: Path, desc: str | None = None) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    bar = progress(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=f"{desc or path.name}: sha256", leave=False)
    try:
        with open(path, "rb") as fh:
            while True:
                block = fh.read(CHUNK)
                if not block:
                    break
                h.update(block)
                bar.update(len(block))
    finally:
        bar.close()
    return h.hexdigest()


def compression_of(path: Path) -> str | None:
    with open(path, "rb") as fh:
        head = fh.read(8)
    for magic, kind in ((b"BZh", "bz2"), (b"\x1f\x8b", "gz"), (b"\xfd7zXZ\x00", "xz"), (b"PK\x03\x04", "zip")):
        if head.startswith(magic):
            return kind
    return None


def check_complete(path: Path, desc: str) -> None:
    """Read a compressed file to its end: a truncated or damaged stream raises
    DataError. Plain files pass (nothing to check without a checksum)."""
    kind = compression_of(path)
    if kind is None:
        return
    name = str(path)
    if kind == "zip":
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataError(f"{desc}: not a complete zip archive ({exc}); truncated download?", name) from None
        if bad is not None:
            raise DataError(f"{desc}: zip member {bad!r} is damaged (CRC mismatch)", name)
        return
    import bz2
    import gzip
    import lzma

    opener = {"bz2": bz2.open, "gz": gzip.open, "xz": lzma.open}[kind]
    bar = progress(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=f"{desc}: checking the {kind} stream", leave=False)
    try:
        with open(path, "rb") as raw, opener(raw, "rb") as fh:
            last = 0
            while fh.read(CHUNK * 8):
                pos = raw.tell()
                bar.update(pos - last)
                last = pos
    except (EOFError, OSError, lzma.LZMAError, ValueError) as exc:
        raise DataError(f"{desc}: the {kind} stream is truncated or damaged ({exc}); "
                        "the download is incomplete", name) from None
    finally:
        bar.close()


def verify(e: Entry, path: Path, what: str) -> str:
    """Check `path` against the entry; on failure delete it (it is never a cache
    file yet) and raise DataError. Returns how it was verified."""
    try:
        if e.size is not None and path.stat().st_size != e.size:
            raise DataError(f"{e.name}: {what} has {path.stat().st_size} bytes, the catalog says {e.size}")
        if e.sha256:
            got = sha256_file(path, e.name)
            if got != e.sha256:
                raise DataError(f"{e.name}: sha256 mismatch: {what} is {got}, the catalog says {e.sha256}")
            return "sha256"
        if e.archive:
            return "archive"  # extraction reads it all and refuses a truncated or damaged archive
        check_complete(path, e.name)
        return "complete-stream" if compression_of(path) else "size" if e.size is not None else "none"
    except DataError as exc:
        _unlink(path)
        raise DataError(f"{exc}; the partial file was deleted, nothing entered the cache") from None


# ---------------------------------------------------------------- archives


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


def _find_member(folder: Path, member: str | None) -> str:
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


# ---------------------------------------------------------------- the cache


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def _locked(e: Entry):
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
    with open(locks / f"{e.name}.lock", "w") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds when empty
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _write_manifest(e: Entry, rel: str, **info) -> None:
    folder = catalog.entry_dir(e)
    data = {"name": e.name, "kind": e.kind, "format": e.format, "path": rel,
            "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "vecpipe": __version__, **info}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def _install(e: Entry, staged: Path, filename: str, **info) -> Path:
    """Move a verified file into the entry's folder (extracting archives) and
    write the manifest last. Returns resolve_local's answer."""
    folder = catalog.entry_dir(e)
    _unlink(folder / MANIFEST)  # replacing: the old state is not trusted meanwhile
    if e.archive:
        extracted = folder / EXTRACTED
        try:
            safe_extract(staged, e.archive, extracted)
        except DataError as exc:
            _unlink(staged)
            raise DataError(f"{e.name}: {exc}; the archive was deleted, nothing entered the cache") from None
        rel = _find_member(extracted, e.member)
        archive_sha = info.pop("sha256", None)
        _unlink(staged)  # the extracted copy is what is used; do not keep both
        _write_manifest(e, rel, archive=filename, archive_sha256=archive_sha, **info)
    else:
        final = folder / filename
        if staged != final:
            os.replace(staged, final)
        _write_manifest(e, filename, **info)
    return catalog.resolve_local(e)


def fetch_entry(e: Entry, opts: FetchOptions | None = None) -> Path:
    """Make the entry available locally and return its path (see resolve_local).
    Already there: returned at once, without touching the network."""
    opts = opts or FetchOptions()
    local = catalog.resolve_local(e)
    if local is not None:
        log.info("%s: already in the cache", e.name)
        return local
    if e.on_hub:
        return fetch_hub(e, opts)
    if not e.urls:
        if e.manual:
            sites = sorted({m.site for m in e.manual})
            log.warning("%s is only on %s; get it by hand:", e.name, " and ".join(sites))
            for line in catalog.manual_steps(e):
                log.warning("%s", line)
            raise UnavailableError(f"{e.name}: no direct download ({' / '.join(sites)} only); "
                                   f"see `vecpipe fetch --info {e.name}`")
        raise UnavailableError(f"{e.name}: listed by its authors but never released for download")
    filename = e.cache_filename
    with _locked(e) as folder:
        local = catalog.resolve_local(e)  # another process may have finished it meanwhile
        if local is not None:
            return local
        part = folder / (filename + ".part")
        url = download(e.urls, part, opts, e.name, e.size)
        how = verify(e, part, "the download")
        if how == "none":
            log.warning("%s: no checksum is known for this file; it was taken as downloaded", e.name)
        size = part.stat().st_size
        # record the checksum of what was received, so it can be compared and published
        sha = e.sha256 if how == "sha256" else sha256_file(part, e.name)
        path = _install(e, part, filename, url=url, sha256=sha, size=size, verified=how)
    log.info("%s: %s", e.name, path)
    return path


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
    with _locked(e) as folder:
        filename = e.cache_filename
        kind = compression_of(src)
        if not e.sha256 and not e.archive:
            # keep the user's compression: name the cache file after what it really is
            stem = filename
            for suffix in (".bz2", ".gz", ".xz", ".zip"):
                if stem.endswith(suffix):
                    stem = stem[: -len(suffix)]
                    break
            filename = stem + ("." + kind if kind else "")
        staging = folder / (filename + ".from")
        _unlink(staging)
        try:
            try:
                shutil.copyfile(src, staging)
            except OSError as exc:
                raise OutputError(f"{staging}: cannot copy {src} into the cache ({exc.strerror or exc})") from None
            try:
                how = verify(e, staging, f"the file {src}")
            except DataError as exc:
                hint = " (the checksum is of the file as published, e.g. still compressed)" if e.sha256 else ""
                raise DataError(str(exc).replace("the partial file was deleted", f"{src} was left as it is") + hint) from None
            if how == "none":
                log.warning("%s: no checksum is known; %s registered as it is", e.name, src)
            size = staging.stat().st_size
            sha = e.sha256 or sha256_file(staging, e.name)
            path = _install(e, staging, filename, url=f"file://{src.resolve()}", sha256=sha, size=size, verified=how)
        finally:
            _unlink(staging)  # gone on success (moved or extracted); never left behind on failure
    log.info("%s: registered %s as %s", e.name, src, path)
    return path


def convert_entry(e: Entry, path: Path) -> Path:
    """`--convert`: turn a fetched word-vector file into the entry's vecdir, once."""
    if e.kind != "static":
        raise UsageError(f"{e.name} is a {e.kind}, not word vectors: --convert does not apply")
    from vecpipe.core.vectors.readwrite import read_vectors
    from vecpipe.core.vectors.vecdir import is_vecdir, save_vecdir

    if is_vecdir(path):
        return path
    if path.is_dir():
        raise UsageError(f"{e.name}: the archive holds several files ({path}); convert the one you want with "
                         "`vecpipe convert`")
    vecdir = catalog.entry_dir(e) / VECDIR
    fmt = e.format if e.format in ("word2vec", "glove", "word2vec-bin", "sparse") else None
    log.info("%s: converting %s to a vecdir", e.name, path.name)
    wv = read_vectors(path, fmt)
    meta = {"source": {"catalog": e.name, "path": str(path), "format": fmt or wv.meta.get("source", {}).get("format")},
            "made_by": {"tool": f"vecpipe {__version__}", "command": "fetch --convert"}}
    if e.licence:
        meta["licence"] = e.licence
    if e.citation:
        meta["citation"] = e.citation
    save_vecdir(wv, vecdir, meta)
    return vecdir


# ---------------------------------------------------------------- Hugging Face


class HubUnreachable(Exception):
    """The hub endpoint gave no answer (refused, reset, timed out): not retried."""


@contextlib.contextmanager
def bounded_hub_client(timeout: float):
    """For the time of one fetch, huggingface_hub's HTTP client waits at most
    `timeout` seconds on every request and does not retry a dead endpoint.
    (Its client has no timeout, some calls pass none, and it retries network
    errors five times with 1-8 s pauses: a closed port took 24 s whatever
    --timeout said, one that never answers took for ever.) A transport puts the
    timeout on every request and turns a network failure into HubUnreachable,
    which the hub client does not retry. Without the hooks this needs (another
    huggingface_hub), only etag_timeout applies."""
    try:
        import httpx2
        from huggingface_hub.utils import _http
    except ImportError:
        yield
        return
    hook = getattr(_http, "hf_request_event_hook", None)
    if hook is None or not hasattr(_http, "set_client_factory"):
        yield
        return

    class Bounded(httpx2.BaseTransport):
        def __init__(self):
            self.inner = httpx2.HTTPTransport()

        def handle_request(self, request):
            if request.url.path.endswith("/api/agent-harnesses"):
                # a best-effort side request of huggingface_hub (it ignores its failure): not
                # needed to fetch a model, and against a dead endpoint it costs one more timeout
                raise HubUnreachable("skipped")
            request.extensions["timeout"] = httpx2.Timeout(timeout).as_dict()
            try:
                return self.inner.handle_request(request)
            except (httpx2.TimeoutException, httpx2.NetworkError) as exc:
                reason = f"no answer within {timeout:g}s" if isinstance(exc, httpx2.TimeoutException) \
                    else (str(exc) or type(exc).__name__)
                raise HubUnreachable(reason) from None

        def close(self):
            self.inner.close()

    def factory():
        return httpx2.Client(event_hooks={"request": [hook]}, follow_redirects=True, timeout=timeout,
                             transport=Bounded())

    previous = getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) or _http.default_client_factory
    _http.set_client_factory(factory)
    try:
        yield
    finally:
        _http.set_client_factory(previous)


def fetch_hub(e: Entry, opts: FetchOptions) -> Path:
    """Download a model (or data set) snapshot into the standard Hugging Face
    cache at the catalog's pinned revision. HF_ENDPOINT (a mirror), HF_HOME /
    HF_HUB_CACHE and HF_HUB_OFFLINE are honoured; so is $VECPIPE_OFFLINE."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    except ImportError:  # pragma: no cover - installed with sentence-transformers
        raise UnavailableError("huggingface_hub is not installed (pip install huggingface_hub)") from None
    from vecpipe.core.io import progress as _progress

    offline = is_offline(opts) or _truthy(os.environ.get("HF_HUB_OFFLINE"))
    endpoint = os.environ.get("HF_ENDPOINT") or None
    if endpoint:
        check_url(endpoint, opts.allow_http)
    kwargs = dict(repo_id=e.hf_id, repo_type=e.hf_repo_type, revision=e.revision, cache_dir=str(catalog.hf_cache_dir()),
                  local_files_only=offline, etag_timeout=opts.timeout)
    if endpoint:
        kwargs["endpoint"] = endpoint.rstrip("/")
    if e.hf_repo_type == "model":
        kwargs["ignore_patterns"] = HF_IGNORE
    quieted = not _progress.enabled() and not are_progress_bars_disabled()
    if quieted:
        disable_progress_bars()
    # its retry notices would interleave with ours; one clear error is enough (-vv shows them)
    hub_log = logging.getLogger("huggingface_hub")
    hub_level = hub_log.level
    if not log.isEnabledFor(logging.DEBUG):
        hub_log.setLevel(logging.ERROR)
    log.info("%s: fetching %s%s from %s", e.name, e.hf_id, f"@{e.revision}" if e.revision else "",
             endpoint or "https://huggingface.co")
    if not offline:
        _check_resolvable(endpoint or "https://huggingface.co", e.name)
    try:
        with bounded_hub_client(opts.timeout):
            path = Path(snapshot_download(**kwargs))
    except HubUnreachable as exc:
        raise UnavailableError(f"{e.name}: cannot reach {endpoint or 'https://huggingface.co'} ({exc}); offline? "
                               "HF_ENDPOINT selects a mirror") from None
    except Exception as exc:  # noqa: BLE001 - every failure of the hub client becomes one message
        top = type(exc).__module__.split(".")[0]
        if top not in ("huggingface_hub", "httpx", "requests", "urllib3", "httpcore") and not isinstance(exc, OSError):
            raise
        where = endpoint or "https://huggingface.co"
        if offline:
            raise UnavailableError(f"{e.name}: offline mode (HF_HUB_OFFLINE/VECPIPE_OFFLINE) and {e.hf_id}"
                                   f"{'@' + e.revision if e.revision else ''} is not in the Hugging Face cache "
                                   f"({catalog.hf_cache_dir()})") from None
        raise UnavailableError(f"{e.name}: cannot get {e.hf_id} from {where} ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else 'no details'}); offline? "
                               "HF_ENDPOINT selects a mirror") from None
    finally:
        hub_log.setLevel(hub_level)
        if quieted:
            enable_progress_bars()
    if e.revision is None:
        log.warning("%s: no pinned revision in the catalog; took %s at commit %s", e.name, e.hf_id, path.name)
    return path


def _check_resolvable(url: str, desc: str) -> None:
    """Fail at once, not after huggingface_hub's half-minute of retries, when the
    hub's host name cannot even be resolved (no network). Skipped behind a proxy."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return
    host = urllib.parse.urlsplit(url).hostname
    if not host:
        return
    try:
        socket.getaddrinfo(host, 443)
    except socket.gaierror:
        raise UnavailableError(f"{desc}: cannot resolve {host}: offline? (HF_ENDPOINT selects a mirror; "
                               "models already in the Hugging Face cache need no network)") from None


# ---------------------------------------------------------------- one call for the CLI


def fetch(name_or_entry, opts: FetchOptions | None = None, *, convert: bool = False, from_file=None) -> Path:
    """Fetch (or register with from_file) one entry; convert to a vecdir if asked."""
    e = name_or_entry if isinstance(name_or_entry, Entry) else catalog.get(name_or_entry)
    opts = opts or FetchOptions()
    if convert and e.kind != "static":
        raise UsageError(f"{e.name} is a {e.kind}, not word vectors: --convert does not apply")
    path = register_file(e, from_file, opts) if from_file is not None else fetch_entry(e, opts)
    if convert:
        path = convert_entry(e, path)
    return path
