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
Every entry is checked against schema.py before it is used.

This module is light: it imports nothing heavy and never touches the network.
"""
from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vecpipe.core.errors import DataError, NoInputError, UsageError
from vecpipe.core.fetch.schema import MANIFEST, VECDIR, check_catalog, check_entry, file_name_problem

CATALOG_FILE = Path(__file__).with_name("catalog.json")
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "builtin"

_COMMIT_RE = re.compile(r"[0-9a-f]{40}")


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


def _entry_from_dict(raw, families: dict, origin: str) -> Entry:
    """An Entry from its JSON, checked against the schema (schema.py)."""
    fields = check_entry(raw, families, origin)
    fields["manual"] = tuple(ManualSource(**m) for m in fields.get("manual") or ())
    fields["urls"] = tuple(fields.get("urls") or ())
    for text_key in ("licence", "citation", "notes", "source"):
        if fields.get(text_key) is None:
            fields[text_key] = ""
    e = Entry(**fields, origin=origin)
    if not e.on_hub:
        problem = file_name_problem(e.cache_filename)
        if problem:
            raise DataError(f"entry {e.name!r}: the file name taken from its first URL {problem}; set filename", origin)
    return e


def _load_file(path: Path) -> tuple[dict, list]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # a leading BOM (Notepad) is ignored
    except FileNotFoundError:
        raise NoInputError(f"{path}: catalog file not found (check $VECPIPE_CATALOG)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"invalid catalog JSON: {exc}", path) from None
    except OSError as exc:
        raise DataError(f"cannot read the catalog file ({exc.strerror or exc}; check $VECPIPE_CATALOG)", path) from None
    return check_catalog(data, path)



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
            ("corpus", e.corpus), ("dimensions", dim_label(e) if dim_label(e) != "-" else None), ("method", e.method),
            ("context", e.context),
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
