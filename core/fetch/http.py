"""Resumable, bounded HTTP(S) downloads of one file.

- HTTPS only (also across redirects) unless the caller allows plain HTTP.
- A partial download lives beside its final place as `<file>.part` and is
  resumed with an HTTP Range request; a server that ignores Range restarts it.
  The resume is conditional (If-Range, with the strong ETag or else the
  Last-Modified date of the response that began the file, kept in
  `<file>.part.json`): a file changed on the server since then is downloaded
  again whole, never spliced from two versions.
- Timeouts on every socket operation; retries with exponential backoff; a
  clear "offline?" message when no host can be reached.
- Bounded whatever the server does: never more bytes than declared, a limited
  number of tries, and --max-time for the whole fetch.
"""
from __future__ import annotations

import http.client
import json
import logging
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from vecpipe import __version__
from vecpipe.core.errors import OutputError, UnavailableError, UsageError
from vecpipe.core.io.progress import progress

if TYPE_CHECKING:  # fetch.py imports this module
    from vecpipe.core.fetch.fetch import FetchOptions

log = logging.getLogger("vecpipe")

CHUNK = 1 << 20
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


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


def _open(url: str, start: int, opts: FetchOptions, timeout: float, validator: str | None = None):
    headers = {"User-Agent": f"vecpipe/{__version__}", "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
        if validator:
            headers["If-Range"] = validator  # the rest of *this* version, else the whole file (200)
    req = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(_RedirectHandler(opts.allow_http))
    return opener.open(req, timeout=timeout)


def _validator_file(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _saved_validator(part: Path, url: str) -> str | None:
    """The validator of the response that began `part`, if it came from `url`."""
    try:
        meta = json.loads(_validator_file(part).read_text(encoding="utf-8"))
        return meta["validator"] if meta.get("url") == url else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_validator(part: Path, url: str, headers) -> None:
    """Keep what identifies the version of the file `part` begins: a strong
    ETag, else Last-Modified (a weak ETag cannot go in If-Range)."""
    etag, modified = headers.get("ETag"), headers.get("Last-Modified")
    validator = etag if etag and not etag.startswith("W/") else modified
    path = _validator_file(part)
    try:
        if validator:
            path.write_text(json.dumps({"url": url, "validator": validator}), encoding="utf-8")
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: {exc.strerror or exc}") from None


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
    validator = _saved_validator(part, url) if have else None
    timeout = opts.timeout
    if deadline is not None:
        timeout = max(min(timeout, deadline - time.monotonic()), 0.05)
    try:
        resp = _open(url, have, opts, timeout, validator)
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
            if have and validator:
                log.warning("%s: the file changed on the server since the partial download; starting again", desc)
            elif have:
                log.info("%s: the server does not resume downloads; starting again", desc)
                restarted = True
            have, mode, total = 0, "wb", length
            _save_validator(part, url, resp.headers)
        if expected is not None and total is not None and total != expected:
            part.unlink(missing_ok=True)  # what is there belongs to another file
            raise _Skip(f"the server announces {total} bytes, the catalog says {expected}")
        limit = expected if expected is not None else total
        if limit is not None and limit > have:
            # a 16 GB file on a disk with 10 GB free fails now, not after an hour of download
            free = shutil.disk_usage(part.parent).free
            if limit - have > free:
                raise OutputError(f"{desc}: the download needs {limit - have} bytes but only {free} are free "
                                  f"in {part.parent}; free some space (or set $VECPIPE_HOME) and fetch again")
        received = 0
        bar = progress(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False)
        try:
            with open(part, mode) as fh:
                while True:
                    # one byte past the limit is enough to know the body is too long
                    want = CHUNK if limit is None else min(CHUNK, limit - have - received + 1)
                    try:
                        # read1: what has arrived (up to `want`), so a slow server's bytes reach the
                        # file, the bar and the deadline check as they come, not a megabyte at a time
                        chunk = resp.read1(want)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Retry(f"connection lost: {_describe(exc)}", restarted=restarted) from None
                    if not chunk:
                        break
                    fh.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                    if limit is not None and have + received > limit:
                        fh.close()
                        part.unlink(missing_ok=True)
                        what = "the catalog declares" if expected is not None else "it announced"
                        raise _Skip(f"the server sends more than the {limit} bytes {what}; stopped reading")
                    complete = limit is not None and have + received == limit
                    if deadline is not None and time.monotonic() > deadline and not complete:
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
            size = _download_once(url, part, opts, desc, expected, deadline)
            _validator_file(part).unlink(missing_ok=True)  # complete: nothing left to resume
            return size
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
    if opts.is_offline():
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
