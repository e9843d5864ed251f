"""Options shared by several commands, as decorators (one definition each)."""
from __future__ import annotations

import click

from vecpipe.core.vectors.wordvectors import ALIASES, FORMATS

FORMAT_CHOICE = click.Choice(list(FORMATS) + list(ALIASES), case_sensitive=False)
FORMAT_NAMES = ", ".join(FORMATS) + " (aliases: " + ", ".join(f"{a}={t}" for a, t in ALIASES.items()) + ")"


def _check_file_output(ctx, param, value):
    """Refuse at once (exit 73) a file output that would replace a folder, not after the work."""
    if value not in (None, "-"):
        from vecpipe.core.io.outputs import check_output

        check_output(value)
    return value


def output_option(help_text="Write here instead of stdout (atomically: a temporary name, renamed when complete).",
                  *, folder_ok=False):
    """-o; `folder_ok` for commands that may write a folder (a vecdir): they check the path once the format is known."""
    return click.option("-o", "--output", "output", type=click.Path(dir_okay=True, allow_dash=True), default=None,
                        help=help_text, callback=None if folder_ok else _check_file_output)


def on_error_option(f):
    return click.option(
        "--on-error",
        type=click.Choice(["stop", "skip"]),
        default="stop",
        show_default=True,
        help="On a bad record: stop with an error, or report it, skip it and count it.",
    )(f)


def unicode_errors_option(f):
    return click.option(
        "--unicode-errors",
        type=click.Choice(["strict", "replace", "ignore"]),
        default="strict",
        show_default=True,
        help="What to do with bytes that are not valid UTF-8.",
    )(f)


MODEL_HELP = ("A vecdir or word-vector file, a sentence-transformers folder, builtin:NAME, a catalog "
              "name or a Hugging Face id in the local cache (default: $VECPIPE_MODEL, else bge-small-zh).")


# ctx.meta key: where -m came from, ("env", spec) or ("default", None), so an error about that model can say so
MODEL_SOURCE = "vecpipe.model_source"


def _note_model_source(ctx, param, value):
    if value is None:
        ctx.meta[MODEL_SOURCE] = ("default", None)
    elif ctx.get_parameter_source(param.name) is click.core.ParameterSource.ENVIRONMENT:
        ctx.meta[MODEL_SOURCE] = ("env", value)
    return value


def model_option(help_text: str = MODEL_HELP):
    """-m alone (the one definition); `help_text` for a command that takes only some models (eval analogy:
    word vectors, which none of the other model options apply to)."""
    return click.option("-m", "--model", "model", metavar="MODEL", envvar="VECPIPE_MODEL", help=help_text,
                        callback=_note_model_source)


def model_options(f):
    """-m and every model option (a core.models.base.ModelSpec), shared by encode, sim, knn and eval."""
    decorators = [
        model_option(),
        click.option("--device", default="auto", show_default=True,
                     help="cpu, cuda, cuda:1, mps, or several: cuda:0,cuda:1 (one worker each)."),
        click.option("--dtype", "torch_dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), default="auto",
                     show_default=True, help="Model weights and compute: auto is float16 on CUDA, float32 elsewhere."),
        click.option("--max-length", type=click.IntRange(min=1), help="Truncate texts to this many tokens."),
        click.option("--backend", type=click.Choice(["torch", "onnx", "openvino"]), default="torch", show_default=True,
                     help="Transformer models: the runtime. onnx (onnxruntime) and openvino run an exported copy of "
                          "the model on the CPU, made once and cached (extras vecpipe[onnx], vecpipe[openvino])."),
        click.option("--quantize", type=click.Choice(["int8"]),
                     help="With --backend onnx/openvino: dynamic int8 weights (faster on CPU; vectors change slightly)."),
        click.option("--pooling", metavar="MODE",
                     help="Transformer models: override the pooling (cls, mean, max, lasttoken, ...)."),
        click.option("--tokenize", type=click.Choice(["auto", "space", "char", "jieba"]), default="auto", show_default=True,
                     help="Static models: auto = longest match over the model's vocabulary."),
        click.option("--oov", type=click.Choice(["skip", "char"]), default="skip", show_default=True,
                     help="Static models: an unknown word is skipped, or replaced by its known characters."),
        click.option("--normalize-words", is_flag=True,
                     help="Static models: scale each word vector to unit length before averaging."),
        click.option("--sif", type=click.FloatRange(min=0, min_open=True), metavar="A",
                     help="Static models: weigh words by A/(A+p(w)) (SIF; needs counts.npy, e.g. 1e-3)."),
        click.option("--trust-remote-code", is_flag=True, help="Allow a model's own Python code to run (only for models you trust)."),
        click.option("--fetch", "allow_download", is_flag=True, envvar="VECPIPE_AUTO_FETCH",
                     help="Allow downloading a model that is not in the cache yet."),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def text_field_option(f):
    return click.option("--text-field", default="text", show_default=True, help="The field of each JSONL record that holds the text.")(f)


def model_spec(model, device, torch_dtype, max_length, pooling, tokenize, oov, normalize_words, sif,
               trust_remote_code, allow_download, backend="torch", quantize=None, **_):
    """The ModelSpec the -m options describe (plain data: load it with .load())."""
    from vecpipe.core.io.outputs import check_unlocked
    from vecpipe.core.models.base import ModelSpec

    ctx = click.get_current_context(silent=True)
    for name in ("output", "ids_out"):  # a locked output: exit 75 now, not after loading the model
        check_unlocked(ctx.params.get(name) if ctx else None)

    return ModelSpec(model, device=device, dtype=torch_dtype, max_length=max_length, tokenize=tokenize, oov=oov,
                     normalize_words=normalize_words, sif=sif, pooling=pooling, trust_remote_code=trust_remote_code,
                     allow_download=allow_download, backend=backend, quantize=quantize)
