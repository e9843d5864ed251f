"""vecpipe finetune: adapt a sentence-embedding model to your pairs, triplets or scored pairs."""
from __future__ import annotations

import click

from vecpipe.cli.options import model_option, on_error_option, unicode_errors_option


@click.command()
@click.argument("train", type=click.Path(allow_dash=True))
@model_option()
@click.option("-o", "--output", required=True, type=click.Path(), help="The model folder to write (atomically; "
              "a folder vecpipe did not make is never replaced).")
@click.option("--loss", type=click.Choice(["mnrl", "cached-mnrl", "cosent", "angle"]),
              help="Override the loss the data imply: mnrl (in-batch negatives, for pairs and triplets), cached-mnrl "
                   "(the same with GradCache: a big --batch-size in little memory), cosent (scored pairs), angle.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True,
              help="In-batch negatives: softmax temperature (scale = 1/T). sentence-transformers uses 0.05, BGE 0.01.")
@click.option("--mini-batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="cached-mnrl: texts per forward pass.")
@click.option("--query-prompt", metavar="TEXT", help="Instruction put before the queries (anchors) in training and "
              "saved as the model's query prompt, so `encode --query` uses it (BGE style).")
@click.option("--bitfit", is_flag=True, help="Train only the bias terms (BitFit, as uniem offers).")
@click.option("--pooling", metavar="MODE", help="Change the model's pooling before training (cls, mean, max, ...).")
@click.option("--max-length", type=click.IntRange(min=1), help="Truncate texts to this many tokens.")
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-5, show_default=True, help="Peak learning rate.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Examples per step (in-batch negatives: the other examples are the negatives).")
@click.option("--warmup", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="Linear warm-up: a fraction of the steps if < 1, else a number of steps.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seeds the data order, dropout and the head.")
@click.option("--fp16", is_flag=True, help="Mixed precision (CUDA GPU only; refused on CPU).")
@click.option("--bf16", is_flag=True, help="bfloat16 mixed precision (CUDA GPU only; refused on CPU).")
@click.option("--grad-accum", type=click.IntRange(min=1), default=1, show_default=True,
              help="Accumulate gradients over this many steps (note: in-batch negatives stay per --batch-size).")
@click.option("--dev", type=click.Path(exists=False), metavar="PATH",
              help="An `eval sts` file or an `eval retrieval` folder: scored before training, at each epoch end and after.")
@click.option("--save-steps", type=click.IntRange(min=1), help="A checkpoint every N steps (default: at each epoch end).")
@click.option("--logging-steps", type=click.IntRange(min=1), default=10, show_default=True,
              help="Record (and show) the training loss every N steps.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint (same data and options).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, mps.")
@click.option("--trust-remote-code", is_flag=True, help="Allow a model's own Python code to run (only for models you trust).")
@on_error_option
@unicode_errors_option
def finetune(train, model, output, loss, temperature, mini_batch_size, query_prompt, bitfit, pooling, max_length, epochs,
             lr, batch_size, warmup, seed, fp16, bf16, grad_accum, dev, save_steps, logging_steps, resume, device, trust_remote_code,
             on_error, unicode_errors):
    """Fine-tune a sentence-embedding model on pairs, triplets or scored pairs.

    TRAIN is a file, or - for stdin.

    The records say what to learn, by their fields (JSONL) or columns (TSV):

    \b
      pairs      text + text_pos (query/positive, anchor/positive, sentence1/sentence2, a<TAB>b)
                 -> in-batch negatives (MultipleNegativesRankingLoss)
      triplets   the same + text_neg (a string or a list; a<TAB>b<TAB>neg...)
                 -> in-batch plus hard negatives
      scored     sentence1 + sentence2 + label, or s1<TAB>s2<TAB>score (as `eval sts` reads)
                 -> CoSENT (text2vec); --loss angle for AnglE

    Training runs on sentence-transformers' trainer. OUT is a
    sentence-transformers folder that `-m OUT` loads in every command, with
    vecpipe_finetune.json: the dev figures before/after, the data's sha256,
    every option, the library versions and the query prompt. An interrupted
    run (Ctrl-C: exit 130) leaves no model under OUT; its checkpoints stay in
    .OUT.finetune-partial/ for --resume. Needs pip install 'vecpipe[train]'.

    \b
    Examples:
      vecpipe finetune -m bge-small-zh pairs.jsonl -o mine-bge --dev sts-dev.tsv
      vecpipe finetune -m m3e-base STS-B.train.data -o m3e-sts --epochs 2 --dev STS-B.valid.data
      vecpipe mine -m bge-small-zh q.jsonl --corpus docs.jsonl | vecpipe finetune -m bge-small-zh - -o out
    """
    from vecpipe.core.models.base import ModelSpec
    from vecpipe.core.train.finetune import FinetuneOptions, finetune as run

    if fp16 and bf16:
        raise click.UsageError("--fp16 and --bf16: pick one")
    spec = ModelSpec(model, device=device, max_length=max_length, pooling=pooling, trust_remote_code=trust_remote_code)
    opts = FinetuneOptions(loss=loss, temperature=temperature, mini_batch_size=mini_batch_size, query_prompt=query_prompt,
                           bitfit=bitfit, epochs=epochs, lr=lr, batch_size=batch_size, warmup=warmup, seed=seed,
                           fp16=fp16, bf16=bf16, grad_accum=grad_accum, save_steps=save_steps, logging_steps=logging_steps,
                           on_error=on_error)
    meta = run(spec, train, output, opts, dev=dev, resume=resume, unicode_errors=unicode_errors)
    if not click.get_current_context().find_root().params.get("quiet"):
        click.echo(f"vecpipe: {summary(meta, output)}", err=True)


def summary(meta: dict, output) -> str:
    t = meta["training"]
    line = (f"{output}: {meta['data']['examples']} {meta['data']['kind']} examples, loss {meta['loss']}, "
            f"{t['steps']} steps in {t['seconds']:.1f}s, final training loss {t['final_loss']:.4f}")
    dev = meta.get("dev")
    if dev and dev.get("before") and dev.get("after"):
        h = dev["after"]["headline"]
        line += f"; dev {h} {dev['before']['metrics'][h]:.4f} -> {dev['after']['metrics'][h]:.4f}"
    return line
