"""Getting catalog entries onto this machine: the one call the CLI makes.

Nothing enters the cache before it is verified (verify.py); downloads resume
(http.py); archives are extracted safely (archives.py); the manifest is
written last (cache.py); hub entries go to the Hugging Face cache (hub.py).
Nothing downloaded is ever unpickled.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from vecpipe import __version__
from vecpipe.core.errors import UnavailableError, UsageError
from vecpipe.core.fetch import catalog
from vecpipe.core.fetch.cache import install, locked, register_file
from vecpipe.core.fetch.catalog import Entry
from vecpipe.core.fetch.http import download
from vecpipe.core.fetch.hub import fetch_hub
from vecpipe.core.fetch.schema import VECDIR
from vecpipe.core.fetch.verify import sha256_file, verify

log = logging.getLogger("vecpipe")


@dataclass
class FetchOptions:
    allow_http: bool = False
    timeout: float = 30.0      # seconds, per socket operation
    retries: int = 4           # per mirror, tries in a row that bring no new byte (beyond the best offset yet)
    backoff: float = 1.0       # seconds before the first retry; doubles each time, at most 60
    max_time: float | None = None  # seconds for the whole fetch of one entry (None: no limit)
    offline: bool | None = None  # None: $VECPIPE_OFFLINE decides

    def is_offline(self, *also: str) -> bool:
        """The offline option, else $VECPIPE_OFFLINE; or any of the variables
        `also` names (e.g. HF_HUB_OFFLINE) set to 1/true/yes/on. A method, so
        http.py and hub.py ask it without importing this module."""
        own = self.offline if self.offline is not None else _env_flag("VECPIPE_OFFLINE")
        return own or any(_env_flag(var) for var in also)


def _env_flag(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")


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
    with locked(e) as folder:
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
        path = install(e, part, filename, url=url, sha256=sha, size=size, verified=how)
    log.info("%s: %s", e.name, path)
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
