"""Results as tables: one result as the human summary on stderr, many as the
table of `vecpipe eval report` (markdown, TSV or aligned text)."""
from __future__ import annotations

import logging

from vecpipe.core.errors import DataError, UsageError
from vecpipe.core.eval.common import TASKS, read_json
from vecpipe.core.io.inputs import display_name

log = logging.getLogger("vecpipe")


def _fmt(v, percent: bool = False) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}" if not percent else str(v)
    if isinstance(v, float):
        if v != v:
            return "nan"
        return f"{100 * v:.2f}" if percent else f"{v:.4f}"
    return str(v)


def render(headers: list[str], rows: list[list], fmt: str = "text") -> str:
    """A table as aligned text, GitHub markdown or TSV."""
    cells = [[str(c) for c in r] for r in rows]
    if fmt == "tsv":
        clean = [[c.replace("\t", " ").replace("\n", " ") for c in r] for r in [headers] + cells]
        return "".join("\t".join(r) + "\n" for r in clean)
    if fmt == "md":
        headers, cells = [_md_cell(h) for h in headers], [[_md_cell(c) for c in r] for r in cells]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(headers)]

    def numeric(i):
        return all(_looksnumber(r[i]) for r in cells if r[i]) and any(r[i] for r in cells)

    right = [numeric(i) for i in range(len(headers))]

    def line(r):
        return [c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]

    if fmt == "md":
        sep = ["-" * max(w - 1, 2) + (":" if right[i] else "-") for i, w in enumerate(widths)]
        out = ["| " + " | ".join(line(headers)) + " |", "| " + " | ".join(sep) + " |"]
        out += ["| " + " | ".join(line(r)) + " |" for r in cells]
        return "\n".join(out) + "\n"
    out = ["  ".join(line(headers)).rstrip()] + ["  ".join(line(r)).rstrip() for r in cells]
    return "\n".join(out) + "\n"


def _md_cell(text) -> str:
    """A markdown table cell: `\\` and `|` escaped (GitHub's rule), line breaks as spaces."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", " ").replace("\n", " ")


def _looksnumber(s: str) -> bool:
    try:
        float(s.replace(",", ""))
        return True
    except ValueError:
        return s in ("nan", "-")


_METRIC_LABELS = {"3cosadd": "3CosAdd", "3cosmul": "3CosMul"}


def summary_table(result: dict) -> str:
    """The human summary of one result (for stderr)."""
    task, model, ds = result["task"], result["model"], result["dataset"]
    head = f"{task}: {ds['name']}  model: {model.get('spec')}  ({result['seconds']:.1f} s)\n"
    m, c = result["metrics"], result["counts"]
    if task == "analogy":
        methods = result["headline"]
        headers = ["category", "questions", "seen", "coverage"] + [_METRIC_LABELS[x] for x in methods]
        rows = [[cat["name"], _fmt(cat["questions"]), _fmt(cat["seen"]), _fmt(cat["coverage"])]
                + [_fmt(cat[x]) for x in methods] for cat in result["categories"]]
        rows.append(["total", _fmt(c["questions"]), _fmt(c["seen"]), _fmt(m["coverage"])] + [_fmt(m[x]) for x in methods])
        tail = (f"accuracy over the seen questions (a, b, c known; an unknown d counts as wrong, as the "
                f"Chinese-Word-Vectors toolkit). gensim's convention (all four known, {c['known']:,} questions): "
                + ", ".join(f"{_METRIC_LABELS[x]} {_fmt(m[x + '_known'])}" for x in methods) + "\n")
        return head + render(headers, rows) + tail
    rows = [[k, _fmt(v)] for k, v in m.items()]
    rows += [[k, _fmt(v) if not isinstance(v, dict) else ", ".join(f"{a}: {b:,}" for a, b in v.items())]
             for k, v in c.items() if v or k not in ("bad_lines",)]
    return head + render(["metric", "value"], rows)


# ---------------------------------------------------------------- eval report


def read_results(paths) -> list[dict]:
    results = []
    for p in paths:
        name = display_name(p)
        data = read_json(p)
        items = data if isinstance(data, list) else [data]
        for item in items:
            if not (isinstance(item, dict) and item.get("task") in TASKS and isinstance(item.get("metrics"), dict)):
                raise DataError("not a vecpipe eval result (no task and metrics)", name)
            item.setdefault("_source", name)
            results.append(item)
    return results


def report_table(results: list[dict], *, fmt: str = "md", layout: str = "wide", metrics=None,
                 percent: bool = False) -> str:
    """Many results as one table.

    wide: a row per model, a column per dataset and metric (the headline
    metrics, or `metrics`), like the leaderboards of text2vec and MTEB.
    long: a row per result and metric, with the task, counts and seconds."""
    if fmt not in ("md", "tsv", "text"):
        raise UsageError("--format must be md, tsv or text")
    if layout not in ("wide", "long"):
        raise UsageError("--layout must be wide or long")

    def chosen(r):
        names = [m for m in (metrics or r.get("headline") or list(r["metrics"])) if m in r["metrics"]]
        return names

    if layout == "long":
        headers = ["model", "task", "dataset", "metric", "value", "n", "seconds"]
        rows = []
        for r in results:
            n = r["counts"].get("questions") or r["counts"].get("pairs") or r["counts"].get("queries") \
                or r["counts"].get("texts") or ""
            for m in chosen(r):
                rows.append([r["model"].get("spec", "?"), r["task"], r["dataset"]["name"], m,
                             _fmt(r["metrics"][m], percent), n, f"{float(r.get('seconds', 0)):.1f}"])
        return render(headers, rows, fmt)
    columns: list[tuple[str, str]] = []
    table: dict[str, dict] = {}
    for r in results:
        model = r["model"].get("spec", "?")
        row = table.setdefault(model, {})
        for m in chosen(r):
            key = (r["dataset"]["name"], m)
            if key not in columns:
                columns.append(key)
            if key in row:
                log.warning("%s: a second result for %s on %s %s; the later one is shown", r["_source"], model, *key)
            row[key] = r["metrics"][m]
    if not columns:
        raise UsageError("none of the results has the metrics asked for")
    single_metric = len({m for _, m in columns}) == 1
    headers = ["model"] + [d if single_metric else f"{d} {_METRIC_LABELS.get(m, m)}" for d, m in columns]
    rows = [[model] + [_fmt(vals[k], percent) if k in vals else "-" for k in columns] for model, vals in table.items()]
    return render(headers, rows, fmt)
