"""eval retrieval: BEIR-like folders, separate queries/corpus/qrels files, or
a SQuAD v1 file (CMRC 2018), ranked by cosine and scored as trec_eval does
(see metrics.py)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from vecpipe.core.errors import DataError, NoInputError, UsageError
from vecpipe.core.eval import metrics as M
from vecpipe.core.eval.common import encode_all, is_jsonl, number, read_json
from vecpipe.core.io.records import OnError
from vecpipe.core.io.inputs import display_name, iter_lines, open_input, read_numbered_records

log = logging.getLogger("vecpipe")


_ID_HEADERS = {"id", "_id", "qid", "query-id", "query_id", "queryid", "corpus-id", "corpus_id", "docid", "doc_id",
               "doc-id", "pid"}


def read_texts_by_id(path, *, on_error: str = "stop", unicode_errors: str = "strict",
                     empty_ok: bool = True) -> dict[str, str]:
    """Queries or corpus: `id<TAB>text` (or `id<TAB>title<TAB>text`) lines, a
    header line tolerated, or BEIR JSONL ({"_id" or "id", "text", "title"}).
    A title is joined to its text with a space, as BEIR does. `empty_ok=False`
    (queries): a blank text is a bad line (a BEIR corpus may hold empty documents)."""
    name = display_name(path)
    bad = OnError(on_error)
    out: dict[str, str] = {}
    where: dict[str, int] = {}

    def add(n, key, title, text):
        if key in out:
            bad(DataError(f"duplicate id {key!r} (first on line {where[key]})", name, n))
            return
        if not empty_ok and not f"{title or ''}{text}".strip():
            bad(DataError(f"empty text for id {key!r}", name, n))
            return
        out[key] = f"{title} {text}".strip() if title else text
        where[key] = n

    if is_jsonl(path):
        with open_input(path) as fh:
            for n, rec in read_numbered_records(fh, name, unicode_errors=unicode_errors, on_bad=bad):
                key = rec.get("_id", rec.get("id"))
                text = rec.get("text")
                title = rec.get("title")
                if key is None or not isinstance(text, str):
                    bad(DataError('expected "_id" (or "id") and a string "text"', name, n))
                    continue
                add(n, str(key), title if isinstance(title, str) else None, text)
    else:
        first = True
        with open_input(path) as fh:
            for n, line in iter_lines(fh, name, unicode_errors=unicode_errors):
                if not line.strip():
                    continue
                parts = line.split("\t")
                if first and parts[0].strip().lower() in _ID_HEADERS:
                    first = False
                    continue
                first = False
                if len(parts) == 2:
                    add(n, parts[0].strip(), None, parts[1])
                elif len(parts) == 3:
                    add(n, parts[0].strip(), parts[1], parts[2])
                else:
                    bad(DataError(f"expected id<TAB>text (or id<TAB>title<TAB>text), got {len(parts)} field(s)",
                                  name, n))
    if not out:
        raise DataError("no records found", name)
    return out


def read_qrels(path, *, on_error: str = "stop", unicode_errors: str = "strict") -> tuple[dict, int]:
    """Relevance judgments: `query-id<TAB>corpus-id<TAB>score` (BEIR, header
    tolerated), TREC `qid iter docid rel`, or JSONL {query-id, corpus-id, score}.
    Returns ({query: {doc: relevance}}, number of judgments)."""
    name = display_name(path)
    bad = OnError(on_error)
    qrels: dict[str, dict[str, float]] = {}
    count = 0

    def add(q, d, r):
        nonlocal count
        qrels.setdefault(q, {})[d] = r
        count += 1

    if is_jsonl(path):
        with open_input(path) as fh:
            for n, rec in read_numbered_records(fh, name, unicode_errors=unicode_errors, on_bad=bad):
                q = next((rec[k] for k in ("query-id", "query_id", "qid") if k in rec), None)
                d = next((rec[k] for k in ("corpus-id", "corpus_id", "docid", "doc_id") if k in rec), None)
                r = next((rec[k] for k in ("score", "relevance", "rel", "label") if k in rec), 1)
                if q is None or d is None or not isinstance(r, (int, float)) or isinstance(r, bool):
                    bad(DataError('expected "query-id", "corpus-id" and a numeric "score"', name, n))
                    continue
                add(str(q), str(d), float(r))
    else:
        first = True
        with open_input(path) as fh:
            for n, line in iter_lines(fh, name, unicode_errors=unicode_errors):
                if not line.strip():
                    continue
                parts = line.split("\t") if "\t" in line else line.split()
                parts = [p.strip() for p in parts]
                if len(parts) == 3:
                    q, d, r = parts
                elif len(parts) == 4:
                    q, _, d, r = parts
                else:
                    first = False
                    bad(DataError("expected query-id<TAB>corpus-id<TAB>score (or TREC: qid 0 docid rel), "
                                  f"got {len(parts)} fields", name, n))
                    continue
                value = number(r)
                if value is None:
                    if first:
                        first = False
                        continue
                    bad(DataError(f"relevance is not a number: {r!r}", name, n))
                    continue
                first = False
                add(q, d, value)
    if not qrels:
        raise DataError("no relevance judgments found", name)
    return qrels, count


_BEIR_NAMES = {
    "queries": ("queries.jsonl", "queries.tsv", "queries.txt"),
    "corpus": ("corpus.jsonl", "corpus.tsv", "corpus.txt", "collection.tsv"),
}


def find_retrieval_files(folder, split: str = "test") -> dict[str, Path]:
    """queries, corpus and qrels in a folder (BEIR layout: corpus.jsonl,
    queries.jsonl, qrels/SPLIT.tsv; or flat: queries.tsv, corpus.tsv, qrels.tsv)."""
    folder = Path(folder)
    found = {}
    for role, names in _BEIR_NAMES.items():
        found[role] = next((folder / n for n in names if (folder / n).is_file()), None)
    qrels_names = [f"qrels/{split}.tsv", f"qrels/{split}.jsonl", "qrels.tsv", "qrels.jsonl", "qrels.txt", f"qrels.{split}.tsv"]
    found["qrels"] = next((folder / n for n in qrels_names if (folder / n).is_file()), None)
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise NoInputError(f"{folder}: no {', '.join(missing)} file found (expected corpus.jsonl|tsv, "
                           f"queries.jsonl|tsv, qrels/{split}.tsv or qrels.tsv)")
    return found


RETRIEVAL_CUTOFFS = {"ndcg_at": (10,), "mrr_at": (10,), "recall_at": (1, 10, 100)}


def run_retrieval(encoder, queries_path, corpus_path, qrels_path, *, query_prompt: str | None = None,
                  corpus_prompt: str | None = None, depth: int = 100, ignore_identical_ids: bool = True,
                  on_error: str = "stop", unicode_errors: str = "strict") -> dict:
    """Encode the corpus and the judged queries, rank by cosine (core.search.topk),
    score the ranking with nDCG@10, MRR@10, MAP and Recall@1/10/100."""
    if depth < 1:
        raise UsageError("--depth must be >= 1")
    started = time.perf_counter()
    queries = read_texts_by_id(queries_path, on_error=on_error, unicode_errors=unicode_errors, empty_ok=False)
    corpus = read_texts_by_id(corpus_path, on_error=on_error, unicode_errors=unicode_errors)
    qrels, judgments = read_qrels(qrels_path, on_error=on_error, unicode_errors=unicode_errors)
    result = _score_retrieval(encoder, queries, corpus, qrels, judgments, query_prompt=query_prompt,
                              corpus_prompt=corpus_prompt, depth=depth, ignore_identical_ids=ignore_identical_ids,
                              queries_name=display_name(queries_path), qrels_name=display_name(qrels_path))
    result["seconds"] = time.perf_counter() - started
    return result


def read_squad(path, *, on_error: str = "stop") -> tuple[dict, dict, dict, dict]:
    """A SQuAD v1 JSON file (CMRC 2018, DRCD, SQuAD) as a retrieval set: the
    paragraphs' contexts are the corpus, the questions the queries, and each
    question's own context its one relevant document. A context given twice
    is one document (the first paragraph's id). Returns (queries, corpus,
    qrels, counts)."""
    name = display_name(path)
    bad = OnError(on_error)
    data = read_json(path) if is_jsonl(path) else None  # no "{": a corpus.tsv given alone, say, is no JSON error
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError('not a SQuAD JSON file (no "data" list of articles with paragraphs); give a retrieval '
                        "folder, or --queries, --corpus and --qrels", name)
    queries: dict[str, str] = {}
    corpus: dict[str, str] = {}
    qrels: dict[str, dict[str, float]] = {}
    doc_of_text: dict[str, str] = {}
    duplicates = 0
    for i, article in enumerate(data["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            bad(DataError(f'data[{i}]: no "paragraphs" list', name))
            continue
        for j, para in enumerate(paragraphs):
            where = f"data[{i}].paragraphs[{j}]"
            context = para.get("context") if isinstance(para, dict) else None
            if not isinstance(context, str) or not context.strip():
                bad(DataError(f'{where}: no "context" text', name))
                continue
            doc = doc_of_text.get(context)
            if doc is None:
                pid = para.get("id")
                doc = str(pid) if isinstance(pid, (str, int)) and str(pid) not in corpus else f"{i}.{j}"
                corpus[doc] = context
                doc_of_text[context] = doc
            else:
                duplicates += 1
            qas = para.get("qas", [])
            for k, qa in enumerate(qas if isinstance(qas, list) else []):
                question = qa.get("question") if isinstance(qa, dict) else None
                if not isinstance(question, str) or not question.strip():
                    bad(DataError(f'{where}.qas[{k}]: no "question" text', name))
                    continue
                qid = qa.get("id")
                qid = str(qid) if isinstance(qid, (str, int)) else f"{i}.{j}.{k}"
                if qid in queries:
                    bad(DataError(f"{where}.qas[{k}]: duplicate question id {qid!r}", name))
                    continue
                queries[qid] = question
                qrels[qid] = {doc: 1.0}
    if not queries:
        raise DataError("no questions with a context found", name)
    counts = {"paragraphs": len(corpus) + duplicates, "duplicate_contexts": duplicates, "bad_entries": bad.count}
    return queries, corpus, qrels, counts


def run_squad_retrieval(encoder, path, *, query_prompt: str | None = None, corpus_prompt: str | None = None,
                        depth: int = 100, on_error: str = "stop") -> dict:
    """Retrieval on a SQuAD v1 file (see read_squad). Query and document ids
    come from different lists, so no document is excluded for sharing a
    query's id."""
    if depth < 1:
        raise UsageError("--depth must be >= 1")
    started = time.perf_counter()
    queries, corpus, qrels, extra = read_squad(path, on_error=on_error)
    name = display_name(path)
    result = _score_retrieval(encoder, queries, corpus, qrels, len(queries), query_prompt=query_prompt,
                              corpus_prompt=corpus_prompt, depth=depth, ignore_identical_ids=False,
                              queries_name=name, qrels_name=name)
    result["counts"].update(extra)
    result["params"]["format"] = "squad"
    result["seconds"] = time.perf_counter() - started
    return result


def _score_retrieval(encoder, queries: dict, corpus: dict, qrels: dict, judgments: int, *, query_prompt, corpus_prompt,
                     depth: int, ignore_identical_ids: bool, queries_name: str, qrels_name: str) -> dict:
    from vecpipe.core.search.topk import topk

    judged = [q for q, rels in qrels.items() if any(r > 0 for r in rels.values())]
    no_text = [q for q in judged if q not in queries]
    if no_text:
        log.warning("%d judged queries are not in %s (skipped), e.g. %r", len(no_text), queries_name, no_text[0])
    qids = [q for q in judged if q in queries]
    if not qids:
        raise DataError("no query with a relevant document in the qrels has a text in the queries file", qrels_name)
    doc_ids = list(corpus)
    missing_docs = sum(1 for q in qids for d, r in qrels[q].items() if r > 0 and d not in corpus)
    if missing_docs:
        log.warning("%d relevant documents named in the qrels are not in the corpus (they count as not found)", missing_docs)
    dv, drows = encode_all(encoder, [corpus[d] for d in doc_ids], prompt=corpus_prompt, normalize=True, desc="corpus")
    dv = dv[drows]
    qv, qrows = encode_all(encoder, [queries[q] for q in qids], prompt=query_prompt, normalize=True, desc="queries")
    qv = qv[qrows]
    exclude = None
    if ignore_identical_ids:
        row_of = {d: i for i, d in enumerate(doc_ids)}
        exclude = [[row_of[q]] if q in row_of else None for q in qids]
        if not any(exclude):
            exclude = None
    k = min(depth, len(doc_ids))
    _, ids = topk(qv, dv, k, metric="cosine", exclude=exclude, index_normalized=True)
    run = {q: [doc_ids[i] for i in ids[j] if i >= 0] for j, q in enumerate(qids)}
    metrics = M.retrieval_metrics(run, qrels, **RETRIEVAL_CUTOFFS)
    counts = {"queries": len(qids), "queries_in_file": len(queries), "corpus": len(doc_ids), "judgments": judgments,
              "judged_queries_without_text": len(no_text), "relevant_not_in_corpus": missing_docs}
    params = {"query_prompt": query_prompt, "corpus_prompt": corpus_prompt, "depth": k,
              "ignore_identical_ids": ignore_identical_ids}
    return {"metrics": metrics, "headline": ["ndcg@10"], "counts": counts, "params": params}
