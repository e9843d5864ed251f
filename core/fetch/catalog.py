"""The catalog: known word vectors, sentence-embedding models and evaluation
data sets, kept as data (``catalog.json`` beside this module), and where each
one lives once fetched.

Public API (used by ``vecpipe fetch`` and by ``-m NAME`` resolution):

    get(name) -> Entry              # UsageError naming close names when unknown
    resolve_local(name) -> Path | None
                                    # the cached file / vecdir / extracted folder
                                    # (static, dataset) or the Hugging Face snapshot
                                    # folder (transformer); never downloads
    missing_message(name) -> str    # one line: the exact `vecpipe fetch NAME` to run
    entries(kind=, language=, corpus=) -> list[Entry]
    cache_root() -> Path            # $VECPIPE_HOME, else $XDG_CACHE_HOME/vecpipe,
                                    # else ~/.cache/vecpipe

Cache layout (one folder per entry, under cache_root()):

    <NAME>/manifest.json      written last: its presence means "complete and verified"
    <NAME>/<file>             the downloaded (or registered) file, as published
    <NAME>/files/...          the contents of an archive (tar.gz, zip), extracted safely
    <NAME>/vecdir/            the native vecdir made by `vecpipe fetch --convert`
    <NAME>/<file>.part        a partial download, resumed by the next fetch

Transformer models (and Hugging Face data sets) are not copied here: they live
in the standard Hugging Face cache ($HF_HUB_CACHE, else $HF_HOME/hub, else
~/.cache/huggingface/hub), so other tools reuse them.

Extra or overriding entries: $VECPIPE_CATALOG names one or more JSON files
(separated by the path separator, ':' on Unix) with the same layout as
catalog.json; an entry there replaces a built-in entry of the same name. This
is how a site adds internal mirrors or private models.

This module is light: it imports nothing heavy and never touches the network.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from vecpipe.core.errors import DataError, UsageError

KINDS = ("static", "transformer", "dataset")
ARCHIVES = ("tar.gz", "tar", "zip")
CATALOG_FILE = Path(__file__).with_name("catalog.json")
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "builtin"
MANIFEST = "manifest.json"
VECDIR = "vecdir"
EXTRACTED = "files"

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
# a Hugging Face repository id ("org/name" or "name") and a revision (commit, branch, tag, refs/pr/N)
_HF_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
_REVISION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_WORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")  # format, language
HF_REPO_TYPES = ("model", "dataset")
# names inside an entry's cache folder that vecpipe itself uses
RESERVED_FILES = {MANIFEST, VECDIR, EXTRACTED}

# the fields every entry of the JSON must spell out (None allowed where unknown)
REQUIRED_FIELDS = ("name", "kind", "format", "urls", "size", "sha256", "licence", "citation", "notes")


@dataclass(frozen=True)
class ManualSource:
    """A place to get a file by hand (a page that needs a browser or an account)."""

    site: str
    url: str
    password: str | None = None


@dataclass(frozen=True)
class Entry:
    """One catalog entry. `kind` is static (word vectors), transformer (a
    sentence-transformers model on the Hugging Face hub) or dataset."""

    name: str
    kind: str
    format: str
    urls: tuple[str, ...] = ()
    size: int | None = None
    sha256: str | None = None
    licence: str = ""
    citation: str = ""
    notes: str = ""
    query_instruction: str | None = None
    hf_id: str | None = None
    revision: str | None = None
    hf_repo_type: str = "model"
    language: str = "zh"
    corpus: str | None = None
    dim: int | None = None
    method: str | None = None
    context: str | None = None
    filename: str | None = None
    archive: str | None = None
    member: str | None = None
    manual: tuple[ManualSource, ...] = ()
    source: str = ""
    family: str | None = None
    builtin: str | None = None  # shipped inside the package: a folder of core/builtin (use -m builtin:NAME)
    origin: str = field(default="built-in", compare=False)

    @property
    def on_hub(self) -> bool:
        """Fetched through huggingface_hub into the Hugging Face cache."""
        return self.hf_id is not None

    @property
    def downloadable(self) -> bool:
        """vecpipe can get it without a person (an HTTP(S) URL or the hub)."""
        return self.on_hub or bool(self.urls)

    @property
    def released(self) -> bool:
        return self.downloadable or bool(self.manual)

    @property
    def cache_filename(self) -> str:
        if self.filename:
            return self.filename
        if self.urls:
            tail = self.urls[0].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            if tail:
                return tail
        return self.name

    def to_dict(self) -> dict:
        d = asdict(self)
        d["urls"] = list(self.urls)
        d["manual"] = [asdict(m) for m in self.manual]
        d.pop("origin")
        return d


# ---------------------------------------------------------------- loading


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _plain_text(value) -> bool:
    """A one-line string without control characters."""
    return isinstance(value, str) and not any(ord(c) < 32 or ord(c) == 127 for c in value)


def _url_problem(url) -> str | None:
    if not _plain_text(url) or " " in url:
        return "must be a URL without spaces or control characters"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("https", "http") or not parts.netloc:
        return "must be an https:// (or http://) URL"
    return None


def _file_name_problem(value) -> str | None:
    if not _plain_text(value) or not value.strip() or "/" in value or "\\" in value:
        return "must be a plain file name"
    if value in (".", "..") or value in RESERVED_FILES or value.endswith((".part", ".from", ".tmp")):
        return f"{value!r} is not a usable file name in the cache folder"
    return None


def _relative_problem(value) -> str | None:
    if not _plain_text(value) or not value.strip():
        return "must be a relative path"
    parts = PurePosixPath(value.replace("\\", "/")).parts
    if value.startswith(("/", "\\")) or (len(value) > 1 and value[1] == ":") or ".." in parts:
        return "must be a relative path inside the cache folder"
    return None


def _optional(check):
    return lambda v: None if v is None else check(v)


def _pattern(regex, what):
    return lambda v: None if isinstance(v, str) and regex.fullmatch(v) and ".." not in v else f"must be {what}"


def _choice(values):
    return lambda v: None if v in values else f"must be one of {', '.join(values)}"


def _text_check(v):
    """Free text, printed by --info: line breaks and tabs, no other control
    characters (no terminal escape sequences from someone else's catalog)."""
    if not isinstance(v, str):
        return "must be a string"
    if any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in v):
        return "must not contain control characters"
    return None


def _one_line(v):
    return None if _plain_text(v) else "must be a one-line string"


def _positive_int(v):
    return None if _is_int(v) and v > 0 else "must be a positive integer"


def _urls_check(v):
    if not isinstance(v, list):
        return "urls must be a list of URLs"
    for url in v:
        problem = _url_problem(url)
        if problem:
            return f"{url!r} {problem}"
    return None


def _manual_check(v):
    if not isinstance(v, list):
        return "must be a list of {site, url, password} objects"
    for m in v:
        if not isinstance(m, dict) or set(m) - {"site", "url", "password"} or not {"site", "url"} <= set(m):
            return "must be a list of {site, url, password} objects (site and url required)"
        if not _plain_text(m["site"]) or not m["site"].strip():
            return "site must be a name"
        problem = _url_problem(m["url"])
        if problem:
            return f"url {m['url']!r} {problem}"
        if m.get("password") is not None and not _plain_text(m["password"]):
            return "password must be a string or null"
    return None


# every field an entry (or a family) may have, with its check: None when fine, else what is wrong
_SCHEMA = {
    "name": _pattern(_NAME_RE, "letters, digits, '.', '_' or '-' (no '..')"),
    "kind": _choice(KINDS),
    "format": _pattern(_WORD_RE, "a format name (letters, digits, '.', '_', '+', '-')"),
    "urls": _urls_check,
    "size": _optional(_positive_int),
    "sha256": _optional(_pattern(_SHA_RE, "64 lowercase hex digits or null")),
    "licence": _optional(_text_check),
    "citation": _optional(_text_check),
    "notes": _optional(_text_check),
    "source": _optional(_text_check),
    "query_instruction": _optional(_text_check),
    "hf_id": _optional(_pattern(_HF_ID_RE, "a Hugging Face repository id (org/name)")),
    "revision": _optional(_pattern(_REVISION_RE, "a commit, branch or tag name (no '..')")),
    "hf_repo_type": _choice(HF_REPO_TYPES),
    "language": _pattern(_WORD_RE, "a language code (zh, multi...)"),
    "corpus": _optional(_one_line),
    "dim": _optional(_positive_int),
    "method": _optional(_one_line),
    "context": _optional(_one_line),
    "filename": _optional(_file_name_problem),
    "archive": _optional(_choice(ARCHIVES)),
    "member": _optional(_relative_problem),
    "manual": _manual_check,
    "family": _optional(_text_check),
    "builtin": _optional(_pattern(_NAME_RE, "the name of a folder of core/builtin")),
}


def _entry_from_dict(raw: dict, families: dict, origin: str) -> Entry:
    """Check an entry against the schema (types, patterns, allowed values, known
    keys); a DataError names the catalog file and the entry."""
    if not isinstance(raw, dict):
        raise DataError(f"catalog entry is not an object: {raw!r}", origin)
    name = raw.get("name")
    where = f"entry {name!r}" if name else "an entry"
    family = raw.get("family")
    if family is not None and not isinstance(family, str):
        raise DataError(f"{where}: family must be the name of one of the \"families\"", origin)
    if family is not None and family not in families:
        raise DataError(f"{where}: family {family!r} is not defined in \"families\"", origin)
    merged = dict(families.get(family, {})) if family is not None else {}
    merged.update(raw)
    unknown = sorted(set(merged) - set(_SCHEMA))
    if unknown:
        raise DataError(f"{where}: unknown fields {', '.join(map(str, unknown))}", origin)
    for key in ("name", "kind", "format"):
        if key not in merged:
            raise DataError(f"{where}: no {key}", origin)
    for key, value in merged.items():
        problem = _SCHEMA[key](value)
        if problem:
            raise DataError(f"{where}: {key} {problem}" if not problem.startswith(key) else f"{where}: {problem}", origin)
    if merged["kind"] == "transformer" and not merged.get("hf_id"):
        raise DataError(f"{where}: a transformer entry needs hf_id", origin)
    if merged.get("member") and not merged.get("archive"):
        raise DataError(f"{where}: member needs archive", origin)
    merged["manual"] = tuple(ManualSource(**m) for m in merged.get("manual") or ())
    merged["urls"] = tuple(merged.get("urls") or ())
    for text_key in ("licence", "citation", "notes", "source"):
        if merged.get(text_key) is None:
            merged[text_key] = ""
    e = Entry(**merged, origin=origin)
    if not e.on_hub:
        problem = _file_name_problem(e.cache_filename)
        if problem:
            raise DataError(f"{where}: the file name taken from its first URL {problem}; set filename", origin)
    return e


def _load_file(path: Path) -> tuple[dict, list[dict]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("catalog file not found (check $VECPIPE_CATALOG)", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"invalid catalog JSON: {exc}", path) from None
    except OSError as exc:
        raise DataError(f"cannot read the catalog file ({exc.strerror or exc}; check $VECPIPE_CATALOG)", path) from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise DataError('a catalog is a JSON object with an "entries" list', path)
    unknown = sorted(set(data) - {"version", "about", "families", "entries"})
    if unknown:
        raise DataError(f"unknown top-level keys {', '.join(unknown)} (a catalog has version, about, families, entries)", path)
    families = data.get("families")
    families = {} if families is None else families
    if not isinstance(families, dict):
        raise DataError('"families" must be an object: family name -> shared fields', path)
    for fam, fields in families.items():
        if not isinstance(fields, dict):
            raise DataError(f"family {fam!r} must be an object of shared fields", path)
        for key, value in fields.items():
            check = _SCHEMA.get(key) if key not in ("name", "family") else None
            problem = "is not a field a family can share" if check is None else check(value)
            if problem:
                raise DataError(f"family {fam!r}: {key} {problem}", path)
    return families, data["entries"]


_cache: dict[str, dict[str, Entry]] = {}


def _extra_catalogs() -> list[Path]:
    value = os.environ.get("VECPIPE_CATALOG", "")
    return [Path(p) for p in value.split(os.pathsep) if p.strip()]


def load_raw(path: Path = CATALOG_FILE) -> dict:
    """The JSON of a catalog file as it is (for validation)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _all() -> dict[str, Entry]:
    extra = _extra_catalogs()
    key = os.pathsep.join(f"{p}@{p.stat().st_mtime_ns if p.exists() else 0}" for p in extra)
    if key in _cache:
        return _cache[key]
    families, raw_entries = _load_file(CATALOG_FILE)
    by_name: dict[str, Entry] = {}
    for raw in raw_entries:
        e = _entry_from_dict(raw, families, "built-in")
        if e.name in by_name:
            raise DataError(f"duplicate catalog name {e.name!r}", CATALOG_FILE)
        by_name[e.name] = e
    for path in extra:
        extra_families, extra_entries = _load_file(path)
        all_families = {**families, **extra_families}
        seen: set[str] = set()
        lowered = {n.lower(): n for n in by_name}
        for raw in extra_entries:
            e = _entry_from_dict(raw, all_families, str(path))
            if e.name.lower() in seen:
                raise DataError(f"duplicate catalog name {e.name!r}", path)
            seen.add(e.name.lower())
            other = lowered.get(e.name.lower())
            if other is not None and other != e.name:
                raise DataError(f"entry {e.name!r}: differs from {other!r} only in case (one cache folder on "
                                "case-insensitive file systems); use the same spelling to replace it", path)
            by_name[e.name] = e
            lowered[e.name.lower()] = e.name
    _cache.clear()
    _cache[key] = by_name
    return by_name


def entries(kind: str | None = None, language: str | None = None, corpus: str | None = None) -> list[Entry]:
    """All entries in catalog order, optionally filtered (exact, case-insensitive)."""
    out = []
    for e in _all().values():
        if kind and e.kind != kind:
            continue
        if language and (e.language or "").lower() != language.lower():
            continue
        if corpus and (e.corpus or "").lower() != corpus.lower():
            continue
        out.append(e)
    return out


def names() -> list[str]:
    return list(_all())


def find(name: str) -> Entry | None:
    """The entry called `name` (exact, then case-insensitive), or None."""
    table = _all()
    if name in table:
        return table[name]
    lowered = {k.lower(): v for k, v in table.items()}
    return lowered.get(name.lower())


def get(name: str) -> Entry:
    """The entry called `name`; a UsageError listing close names when unknown."""
    e = find(name)
    if e is not None:
        return e
    close = difflib.get_close_matches(name, names(), n=5, cutoff=0.6)
    if not close:
        close = [n for n in names() if name.lower() in n.lower()][:5]
    hint = f"; did you mean: {', '.join(close)}?" if close else ""
    raise UsageError(f"unknown catalog name {name!r}{hint} (`vecpipe fetch --list` shows them all)")


def _entry(name_or_entry) -> Entry:
    return name_or_entry if isinstance(name_or_entry, Entry) else get(name_or_entry)


# ---------------------------------------------------------------- where things live


def cache_root() -> Path:
    """$VECPIPE_HOME, else $XDG_CACHE_HOME/vecpipe, else ~/.cache/vecpipe."""
    home = os.environ.get("VECPIPE_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vecpipe"


def entry_dir(name_or_entry) -> Path:
    return cache_root() / _entry(name_or_entry).name


def read_manifest(name_or_entry) -> dict | None:
    path = entry_dir(name_or_entry) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError):
        return None  # a damaged manifest counts as "not fetched"; the next fetch rewrites it
    return data if isinstance(data, dict) else None


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, by the same rules as huggingface_hub (read now,
    not when huggingface_hub was imported)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def hf_snapshot(e: Entry) -> Path | None:
    """The local snapshot folder of a hub entry at its pinned revision (or the
    commit the cache's `main` ref points to when none is pinned); None if absent."""
    repo_dir = hf_cache_dir() / f"{e.hf_repo_type}s--{e.hf_id.replace('/', '--')}"
    revision = e.revision or "main"
    commit = revision if _COMMIT_RE.fullmatch(revision) else None
    if commit is None:
        ref = repo_dir / "refs" / revision
        try:
            commit = ref.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
        if not _COMMIT_RE.fullmatch(commit):
            return None  # a damaged ref: never a path
    snap = repo_dir / "snapshots" / commit
    if not snap.is_dir():
        return None
    if e.kind == "transformer":
        # a usable model folder has its config; a half-finished snapshot may not
        if not any((snap / f).exists() for f in ("modules.json", "config.json")):
            return None
    elif not any(snap.iterdir()):
        return None
    return snap


def resolve_local(name) -> Path | None:
    """Where the entry is on this machine, or None; never downloads.

    static: the vecdir made by --convert if present, else the downloaded file
    (or the vectors file inside an extracted archive, or the extracted folder);
    dataset: the file (or folder); transformer: the Hugging Face snapshot folder
    at the pinned revision. Raises UsageError for a name not in the catalog."""
    e = _entry(name)
    if e.builtin:
        path = BUILTIN_DIR / e.builtin
        return path if (path / "vocab.txt").is_file() else None
    if e.on_hub:
        return hf_snapshot(e)
    manifest = read_manifest(e)
    if manifest is None:
        return None
    folder = entry_dir(e)
    if e.kind == "static":
        vecdir = folder / VECDIR
        if (vecdir / "vocab.txt").is_file() and any((vecdir / f).is_file() for f in ("vectors.npy", "vectors.npz")):
            return vecdir
    rel = manifest.get("path")
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        return None
    path = folder / rel
    return path if path.exists() else None


def fetch_command(e: Entry) -> str:
    return f"vecpipe fetch {e.name}"


def missing_message(name) -> str:
    """One line for a catalog entry that is not on this machine: the exact
    `vecpipe fetch` command to run (or how to get it when it needs a person)."""
    e = _entry(name)
    if e.on_hub:
        where = f"the Hugging Face cache ({hf_cache_dir()})"
    else:
        where = f"the vecpipe cache ({cache_root()})"
    if e.downloadable:
        return f"{e.name} is in the catalog but not in {where}; run: {fetch_command(e)}"
    if e.manual:
        return (f"{e.name} is in the catalog but not in {where}; it has no direct download: "
                f"run `vecpipe fetch --info {e.name}` for how to get the file by hand, then "
                f"`vecpipe fetch {e.name} --from FILE`")
    return f"{e.name} is listed in the catalog but was never released for download"


def manual_steps(e: Entry) -> list[str]:
    """Human steps to get a file that has no direct download."""
    lines = []
    for i, m in enumerate(e.manual):
        pw = f" (password: {m.password})" if m.password else ""
        lead = "  1. download it from" if i == 0 else "     or from"
        lines.append(f"{lead} {m.site}: {m.url}{pw}")
    lines.append(f"  {2 if e.manual else 1}. register the file: vecpipe fetch {e.name} --from /path/to/the/file")
    if e.sha256:
        lines.append("     (it is checked against the catalog's sha256 before it enters the cache)")
    return lines


def dim_label(e: Entry) -> str:
    """The DIM shown for an entry: its dense size, "sparse" for sparse vectors
    (one column per context feature: no fixed size), else "-"."""
    if e.dim:
        return str(e.dim)
    return "sparse" if e.format == "sparse" else "-"


def info_lines(e: Entry) -> list[str]:
    """`vecpipe fetch --info`: every field that has a value, then the local state."""
    rows = [("name", e.name), ("kind", e.kind), ("format", e.format), ("language", e.language),
            ("corpus", e.corpus), ("dimensions", dim_label(e) if dim_label(e) != "-" else None), ("method", e.method), ("context", e.context),
            ("hf_id", e.hf_id), ("revision", e.revision or ("(not pinned: main)" if e.on_hub else None)),
            ("query_instruction", e.query_instruction), ("file", None if e.on_hub else e.cache_filename),
            ("archive", e.archive), ("member", e.member), ("size", e.size), ("sha256", e.sha256 or "unknown"),
            ("licence", e.licence), ("source", e.source), ("citation", e.citation), ("notes", e.notes)]
    lines = [f"{k}: {v}" for k, v in rows if v not in (None, "")]
    for url in e.urls:
        lines.append(f"url: {url}")
    local = resolve_local(e)
    lines.append(f"local: {local if local else '(not fetched)'}")
    if not e.downloadable and e.manual:
        lines.append("get it by hand:")
        lines.extend(manual_steps(e))
    return lines
