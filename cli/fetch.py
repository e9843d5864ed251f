"""vecpipe fetch: catalog models and data, downloaded once, verified, cached."""
from __future__ import annotations

import click
import orjson

from vecpipe.core.fetch import catalog, schema
from vecpipe.core.errors import UsageError
from vecpipe.core.io.env import current


def _complete_names(ctx, param, incomplete):
    try:
        return [n for n in catalog.names() if n.startswith(incomplete)]
    except Exception:  # noqa: BLE001 - completion must never fail loudly
        return []


def _source(e: catalog.Entry) -> str:
    if e.builtin:
        return "builtin"  # shipped inside the package
    if e.on_hub:
        return "hub"
    if any(u.lower().startswith("https://") for u in e.urls):
        return "https"
    if e.urls:
        return "http"
    return "manual" if e.manual else "none"


def _list(kind, language, corpus, as_json):
    rows = catalog.entries(kind=kind, language=language, corpus=corpus)
    if as_json:
        out = current().stdout
        for e in rows:
            local = catalog.resolve_local(e)
            d = e.to_dict()
            d["local"] = str(local) if local else None
            out.write(orjson.dumps(d, option=orjson.OPT_APPEND_NEWLINE))
        return
    table = [("NAME", "KIND", "DIM", "FORMAT", "GET", "LOCAL")]
    for e in rows:
        table.append((e.name, e.kind, catalog.dim_label(e), e.format, _source(e), "yes" if catalog.resolve_local(e) else "-"))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME]...", shell_complete=_complete_names)
@click.option("--list", "list_", is_flag=True, help="List the catalog: a table, or JSONL with --json.")
@click.option("--info", "info", metavar="NAME", shell_complete=_complete_names,
              help="Show what the catalog knows about NAME (source, licence, citation, checksum, how to get it) "
                   "and where it is on this machine.")
@click.option("--json", "as_json", is_flag=True, help="With --list or --info: JSON instead of text.")
@click.option("--kind", type=click.Choice(schema.KINDS), help="With --list: only this kind.")
@click.option("--language", metavar="LANG", help="With --list: only this language (zh, multi).")
@click.option("--corpus", metavar="CORPUS", help="With --list: only this training corpus (zhihu, baidubaike, tencent...).")
@click.option("--convert", is_flag=True,
              help="Turn downloaded word vectors into a vecdir (once) and print the vecdir's path.")
@click.option("--from", "from_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Register FILE, downloaded by hand, as NAME (checked against the catalog's sha256 when known).")
@click.option("--allow-http", is_flag=True, help="Accept plain-HTTP URLs and mirrors (HTTPS only by default).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds to wait on the network before a try counts as failed.")
@click.option("--retries", type=click.IntRange(min=0), default=4, show_default=True,
              help="Retries per mirror after tries that brought no new byte, waiting 1s, 2s, 4s... in between "
                   "(a try that got further resets the count; 5 x (N+1) tries at most). Exit 69 when used up.")
@click.option("--max-time", type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="Give up fetching a NAME after this many seconds in all (exit 69; a partial download is kept "
                   "and resumed next time). Default: no limit.")
def fetch(names, list_, info, as_json, kind, language, corpus, convert, from_file, allow_http, timeout, retries,
          max_time):
    """Download catalog models and data into the cache, verified.

    Prints the local path of each NAME on stdout, one per line, so
    `$(vecpipe fetch NAME)` composes. Word vectors and data sets go to the
    vecpipe cache ($VECPIPE_HOME, default $XDG_CACHE_HOME/vecpipe, i.e.
    ~/.cache/vecpipe); transformer models go to the Hugging Face cache at the
    catalog's pinned revision (HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE are
    honoured). A fetched NAME is not downloaded again.

    Downloads resume where they stopped (HTTP Range) and are checked before
    they enter the cache: by sha256 when the catalog knows it (a mismatch
    deletes the partial file), else by reading compressed files to their end,
    so a truncated .bz2 is caught. Archives are extracted only inside their
    folder. Files only on Baidu Netdisk are fetched by hand: the error says
    where, and --from registers the file. VECPIPE_OFFLINE=1 never touches the
    network; VECPIPE_CATALOG adds entries from your own JSON files.

    \b
    Examples:
      vecpipe fetch --list --kind static --corpus zhihu
      vecpipe fetch --info sgns.zhihu.word
      vecpipe fetch sgns.zhihu.word --from ~/Downloads/sgns.zhihu.word.bz2 --convert
      vecpipe fetch bge-small-zh-v1.5 ca8.morphological
      vecpipe convert "$(vecpipe fetch pku-morpheme-cbow-50d)" --to jsonl --limit 3
    """
    filters = kind or language or corpus
    if list_:
        if names or info or from_file or convert:
            raise UsageError("--list takes no NAME and no --info/--from/--convert")
        _list(kind, language, corpus, as_json)
        return
    if filters:
        raise UsageError("--kind, --language and --corpus filter --list")
    if info:
        if names or from_file or convert:
            raise UsageError("--info takes one NAME and no other NAME, --from or --convert")
        e = catalog.get(info)
        if as_json:
            d = e.to_dict()
            local = catalog.resolve_local(e)
            d["local"] = str(local) if local else None
            d["missing_message"] = None if local else catalog.missing_message(e)
            current().stdout.write(orjson.dumps(d, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_INDENT_2))
        else:
            for line in catalog.info_lines(e):
                click.echo(line)
        return
    if as_json:
        raise UsageError("--json goes with --list or --info")
    if not names:
        raise UsageError("name what to fetch (`vecpipe fetch --list` shows the catalog)")
    if from_file is not None and len(names) != 1:
        raise UsageError("--from registers one file: give exactly one NAME")
    entries = [catalog.get(n) for n in names]  # every name is checked before anything is downloaded

    from vecpipe.core.fetch.fetch import FetchOptions, fetch as fetch_one

    opts = FetchOptions(allow_http=allow_http, timeout=timeout, retries=retries, max_time=max_time)
    for e in entries:
        path = fetch_one(e, opts, convert=convert, from_file=from_file)
        click.echo(str(path))
