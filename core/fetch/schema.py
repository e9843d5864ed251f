"""What a catalog file may hold: its top-level keys, the families, and every
field of an entry with its check (types, patterns, allowed values). A bad
catalog is refused with a DataError naming the file and the entry; no field
can smuggle a path out of the cache folder or control characters onto the
terminal.

This module is light: the standard library only."""
from __future__ import annotations

import re
import urllib.parse
from pathlib import PurePosixPath

from vecpipe.core.errors import DataError

KINDS = ("static", "transformer", "dataset")
ARCHIVES = ("tar.gz", "tar", "zip")
HF_REPO_TYPES = ("model", "dataset")
# the fields every entry of the JSON must spell out (None allowed where unknown)
REQUIRED_FIELDS = ("name", "kind", "format", "urls", "size", "sha256", "licence", "citation", "notes")

# names inside an entry's cache folder that vecpipe itself uses (the layout is in catalog.py);
# defined here because an entry's file may not take one of them
MANIFEST = "manifest.json"
VECDIR = "vecdir"
EXTRACTED = "files"
RESERVED_FILES = {MANIFEST, VECDIR, EXTRACTED}

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
# a Hugging Face repository id ("org/name" or "name") and a revision (commit, branch, tag, refs/pr/N)
_HF_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
_REVISION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_WORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")  # format, language


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


def file_name_problem(value) -> str | None:
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
    "filename": _optional(file_name_problem),
    "archive": _optional(_choice(ARCHIVES)),
    "member": _optional(_relative_problem),
    "manual": _manual_check,
    "family": _optional(_text_check),
    "builtin": _optional(_pattern(_NAME_RE, "the name of a folder of core/builtin")),
}


def check_entry(raw, families: dict, origin) -> dict:
    """Check an entry against the schema (types, patterns, allowed values, known
    keys); returns its fields merged with its family's. A DataError names the
    catalog file and the entry."""
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
    return merged


def check_catalog(data, path) -> tuple[dict, list]:
    """Check the top level of a catalog file's JSON and its families; returns
    (families, the raw entries)."""
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
