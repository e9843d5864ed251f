"""vecpipe knn: nearest neighbours and analogies."""
from __future__ import annotations

import click

from vecpipe.cli.options import model_spec, model_options, output_option, text_field_option

# the static model drops a prompt (a word is looked up, a text averaged): refuse it rather than ignore it
PROMPT_WORD_VECTORS = "--prompt is for models that encode texts; word vectors look words up and average them"


@click.command()
@click.argument("queries", nargs=-1)
@click.option("--index", "index_path", type=click.Path(),
              help="What to search: a vecdir, an .npy (ids from --ids), JSONL with vectors, a .parquet, or a folder or quoted glob of "
                   "shards (encode's sharded output, or .npy files with NAME.ids.jsonl). Default: the -m word vectors.")
@click.option("--ids", "ids_path", type=click.Path(dir_okay=False), help="One id per index row (JSONL or lines).")
@click.option("--queries", "src", type=click.Path(allow_dash=True), default="-", show_default=True,
              help="Queries when none are given as arguments: words/texts (lines or JSONL), JSONL with vectors, or an npy stream.")
@model_options
@output_option()
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True, help="Neighbours per query.")
@click.option("--metric", type=click.Choice(["cosine", "dot", "euclidean"]), default="cosine", show_default=True,
              help="The score: cosine, dot product, or minus the euclidean distance (--analogy: cosine only). "
                   "With --faiss-index: the metric recorded when it was saved (another one is refused).")
@click.option("--min-score", type=float, help="Drop neighbours scoring below this.")
@click.option("--exclude-self", is_flag=True,
              help="Leave out the index row that is the query: the row with the query's id (--id-field; a text query: "
                   "the row whose id is the text), else the row at the query's position (queries = the index's rows).")
@click.option("--flat", is_flag=True, help="One TSV line per hit: query, rank, id, score.")
@click.option("--analogy", "analogy_flag", is_flag=True, help="Queries are triples a b c: find d with a:b = c:d.")
@click.option("--method", type=click.Choice(["add", "mul"]), default="add", show_default=True,
              help="Analogies: 3CosAdd or 3CosMul.")
@click.option("--faiss", "faiss_spec", help='Approximate search with a faiss factory string, e.g. "IVF4096,Flat" or "HNSW32".')
@click.option("--save-index", type=click.Path(dir_okay=False),
              help="Save the faiss index built by --faiss (its metric, dim and rows in SAVE_INDEX.meta.json beside it).")
@click.option("--faiss-index", type=click.Path(dir_okay=False), help="Search a saved faiss index (ids from --index/--ids).")
@click.option("--nprobe", type=click.IntRange(min=1), help="faiss IVF: lists visited per query.")
@click.option("--query", "use_query_prompt", is_flag=True, help="Encode text queries with the model's query instruction.")
@click.option("--prompt", help="Text put before every text query.")
@text_field_option
@click.option("--id-field", default="id", show_default=True, help="The id field of JSONL index records and --ids.")
@click.option("--engine", "shard_engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="A sharded --index (a folder or glob of shards): search its shards here, or as Ray tasks.")
@click.option("--ray-address", default="auto", show_default=True, metavar="ADDRESS",
              help="--engine ray: the cluster to join (auto: the one started on this machine, else a local one).")
def knn(queries, index_path, ids_path, src, output, k, metric, min_score, exclude_self, flat, analogy_flag, method,
        faiss_spec, save_index, faiss_index, nprobe, use_query_prompt, prompt, text_field, id_field, shard_engine,
        ray_address, **model_opts):
    """Find nearest neighbours.

    Queries are words (searched among the -m word vectors), texts (encoded
    with -m), or vectors; each gets one JSONL record with its `neighbors`:
    [{id, score}, ...], best first. A query word is never its own neighbour.

    \b
    Examples:
      vecpipe knn -m zhihu.vecdir 北京 上海 -k 5
      vecpipe knn -m zhihu.vecdir --analogy 男人 国王 女人
      cat q.jsonl | vecpipe encode -m bge-small-zh --query --to npy | vecpipe knn --index docs.npy --ids docs.jsonl
      vecpipe knn --index docs.npy --faiss HNSW32 --save-index docs.faiss --queries q.npys
    """
    from vecpipe.core.errors import UsageError
    from vecpipe.core.models.resolve import catalog_query_prompt
    from vecpipe.core.search.faiss import build_faiss, load_faiss, save_faiss
    from vecpipe.core.search.index import load_index
    from vecpipe.core.search.knn import KnnOptions, run_knn
    from vecpipe.core.io.jsonl import write_jsonl
    from vecpipe.core.io.outputs import open_output

    needs_model = model_opts["model"] is not None or index_path is None
    if analogy_flag and metric != "cosine":  # answered by cosine whatever --metric says: refuse, never ignore
        raise UsageError("--analogy ranks by cosine (3CosAdd, 3CosMul, as gensim's most_similar); drop --metric")
    if analogy_flag and (faiss_spec or faiss_index):
        raise UsageError("--analogy searches every word exactly; --faiss and --faiss-index are for neighbour queries")
    if not analogy_flag and _given("method"):
        raise UsageError("--method picks how --analogy answers a b c; give --analogy")
    if use_query_prompt and prompt:  # as encode refuses it
        raise UsageError("--query and --prompt both set a prompt; use one")
    if use_query_prompt and not needs_model:  # vector queries take no prompt: say so rather than ignore it
        raise UsageError("--query encodes text queries with the model's query instruction; give -m MODEL")
    if prompt and not needs_model:  # the same: a prompt goes before text, and vector queries have none
        raise UsageError("--prompt is put before text queries, which need -m MODEL; vector queries take no prompt")
    encoder = model_spec(**model_opts).load() if needs_model else None
    if prompt and encoder.word_vectors is not None:
        raise UsageError(PROMPT_WORD_VECTORS)
    if use_query_prompt:
        prompt = catalog_query_prompt(model_opts["model"]) or getattr(encoder, "query_prompt", None)
    if save_index and not faiss_spec:
        raise UsageError("--save-index saves the index built by --faiss FACTORY; give --faiss")
    index = load_index(index_path, ids_path=ids_path, id_field=id_field) if index_path else None
    if faiss_spec or faiss_index:
        if index is None:
            words = model_opts["model"] or "WORDS.vecdir"  # the model's own words are searched exactly unless indexed
            raise UsageError(f"--faiss needs --index; for the words of -m, give --index {words} --exclude-self")
        if faiss_index:
            metric = load_faiss(index, faiss_index, metric if _given("metric") else None)
        else:
            build_faiss(index, faiss_spec, metric)
            if save_index:
                save_faiss(index, save_index)
    device = model_opts["device"]
    if device == "auto":
        device = encoder.device if encoder is not None else "cpu"  # the index goes where the model runs
    opts = KnnOptions(k=k, metric=metric, min_score=min_score, exclude_self=exclude_self, text_field=text_field,
                      id_field=id_field, device=device, nprobe=nprobe, prompt=prompt, shard_engine=shard_engine,
                      ray_address=ray_address)
    results = run_knn(list(queries), src, index, encoder, opts, analogy_method=method if analogy_flag else None)
    with open_output(output) as out:
        if not flat:
            write_jsonl(out, results)
            return
        for rec in results:
            label = rec.get(text_field, rec.get("id", rec.get("row", " ".join(rec.get("analogy", [])))))
            for rank, hit in enumerate(rec.get("neighbors") or [], 1):
                out.write(f"{label}\t{rank}\t{hit['id']}\t{hit['score']:.6g}\n".encode())


def _given(option: str) -> bool:
    """Whether the user gave the option (on the command line or by an environment variable), not its default."""
    source = click.get_current_context().get_parameter_source(option)
    return source not in (click.core.ParameterSource.DEFAULT, click.core.ParameterSource.DEFAULT_MAP)
