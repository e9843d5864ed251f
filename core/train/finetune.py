"""`vecpipe finetune`: adapt a sentence-transformers model to your data with
sentence-transformers' own trainer and losses (no hand-written loop).

The run lives in a work folder beside the output, `.OUT.finetune-partial/`
(checkpoints, the run's fingerprint, a copy of stdin's data). The finished
model is written atomically under OUT (core.io.outputs.atomic_path), then
the work folder is removed. An interrupted run (Ctrl-C, SIGTERM) leaves no
model under OUT, and keeps its checkpoints for `--resume`. Dev figures come
from vecpipe's own eval code (core.eval.sts / core.eval.retrieval), before
training, at each epoch end (a sentence-transformers evaluator that calls it)
and after."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from vecpipe.core.errors import CannotCreateError, DataError, UnavailableError, UsageError
from vecpipe.core.io.inputs import display_name, open_input
from vecpipe.core.io.outputs import atomic_path, check_output, lock_output, make_parents, remove_made
from vecpipe.core.train.finetune_data import TrainingData, read_training_data

log = logging.getLogger("vecpipe")

LOSSES = ("mnrl", "cached-mnrl", "cosent", "angle")
IN_BATCH = ("mnrl", "cached-mnrl")
METADATA = "vecpipe_finetune.json"
STATE = "state.json"
INSTALL = "pip install 'vecpipe[train]'"


@dataclass
class FinetuneOptions:
    loss: str | None = None  # None: by the data (pairs/triplets -> mnrl, scored -> cosent)
    temperature: float = 0.05  # in-batch negatives: scale = 1/temperature (BGE 0.01, sentence-transformers 0.05)
    mini_batch_size: int = 32  # cached-mnrl: the GradCache chunk
    query_prompt: str | None = None
    bitfit: bool = False
    epochs: int = 1
    lr: float = 2e-5
    batch_size: int = 32
    warmup: float = 0.1  # < 1: a ratio of the steps; >= 1: steps
    seed: int = 42
    fp16: bool = False
    bf16: bool = False
    grad_accum: int = 1
    save_steps: int | None = None  # None: a checkpoint at each epoch end
    logging_steps: int = 10
    on_error: str = "stop"


def check_extras() -> None:
    """datasets and accelerate (the trainer needs both): exit 69 with the pip command."""
    import importlib.util

    missing = [m for m in ("datasets", "accelerate") if _find(importlib.util, m) is None]
    if missing:
        raise UnavailableError(f"fine-tuning needs {' and '.join(missing)}: {INSTALL}")


def _find(util, name):
    import sys

    if name in sys.modules:
        return sys.modules[name]  # None when a test (or the user) blocked it
    return util.find_spec(name)


def choose_loss(kind: str, loss: str | None) -> str:
    if loss is None:
        return "cosent" if kind == "scored" else "mnrl"
    if kind == "scored" and loss in IN_BATCH:
        raise UsageError(f"--loss {loss} trains on pairs or triplets; the data are scored pairs (use cosent or angle)")
    if kind != "scored" and loss not in IN_BATCH:
        raise UsageError(f"--loss {loss} trains on scored pairs; the data are {kind} (use mnrl or cached-mnrl)")
    return loss


def _st(module: str):
    """A sentence-transformers module where 6.x keeps it (sentence_transformer.X), else where 3.x-5.x did."""
    import importlib

    try:
        return importlib.import_module(f"sentence_transformers.sentence_transformer.{module}")
    except ImportError:
        return importlib.import_module(f"sentence_transformers.{module}")


def make_loss(name: str, model, opts: FinetuneOptions):
    losses = _st("losses")

    if name == "mnrl":
        return losses.MultipleNegativesRankingLoss(model, scale=1.0 / opts.temperature)
    if name == "cached-mnrl":
        return losses.CachedMultipleNegativesRankingLoss(model, scale=1.0 / opts.temperature,
                                                         mini_batch_size=opts.mini_batch_size, show_progress_bar=False)
    if name == "cosent":
        return losses.CoSENTLoss(model)
    return losses.AnglELoss(model)


def apply_bitfit(model) -> int:
    """BitFit (uniem): only the bias terms train. Returns how many parameters do."""
    n = 0
    for name, p in model.named_parameters():
        p.requires_grad = name.endswith("bias")
        n += p.numel() if p.requires_grad else 0
    return n


# ---------------------------------------------------------------- dev evaluation


def dev_evaluate(encoder, dev, query_prompt: str | None) -> dict:
    """vecpipe's own eval on the model being trained: an `eval sts` file
    (Spearman) or an `eval retrieval` folder (nDCG@10 and the rest)."""
    from vecpipe.core.eval.retrieval import find_retrieval_files, run_retrieval
    from vecpipe.core.eval.sts import run_sts

    model = encoder.model
    was_training = model.training
    model.eval()
    try:
        if Path(dev).is_dir():
            f = find_retrieval_files(dev)
            res = run_retrieval(encoder, f["queries"], f["corpus"], f["qrels"], query_prompt=query_prompt)
        else:
            res = run_sts(encoder, dev)
    finally:
        model.train(was_training)
    return {"metrics": res["metrics"], "headline": res["headline"][0]}


def _dev_evaluator(encoder, dev, query_prompt, figures: list, keep=None):
    """A sentence-transformers evaluator (the trainer calls it at each epoch
    end) that runs vecpipe's eval and keeps each figure in `figures` (and
    calls keep(figures), which saves them for a resumed run)."""
    SentenceEvaluator = _st("evaluation").SentenceEvaluator

    class VecpipeDevEvaluator(SentenceEvaluator):
        def __init__(self):
            super().__init__()
            self.primary_metric = None

        def __call__(self, model, output_path=None, epoch=-1, steps=-1):
            res = dev_evaluate(encoder, dev, query_prompt)
            figures.append({"epoch": epoch, "steps": steps, **res})
            if keep is not None:
                keep(figures)
            self.primary_metric = res["headline"]
            return dict(res["metrics"])

    return VecpipeDevEvaluator()


def _progress_callback():
    """The trainer's steps as a vecpipe progress bar (stderr, a terminal only,
    -q silences) with the running loss."""
    from transformers import TrainerCallback

    from vecpipe.core.io.progress import progress

    class VecpipeProgress(TrainerCallback):
        bar = None

        def on_train_begin(self, args, state, control, **kw):
            self.bar = progress(total=state.max_steps, desc="finetune", unit="step", initial=state.global_step)

        def on_step_end(self, args, state, control, **kw):
            if self.bar is not None:
                self.bar.update(1)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                if hasattr(self.bar, "set_postfix"):
                    self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

        def on_train_end(self, args, state, control, **kw):
            if self.bar is not None:
                self.bar.close()

    return VecpipeProgress()


# Tests (and nothing else) may add trainer callbacks here, e.g. one that
# interrupts the run at a given step as Ctrl-C would.
EXTRA_CALLBACKS: list = []


# ---------------------------------------------------------------- the work folder


def work_folder(out) -> Path:
    target = Path(os.path.realpath(out))
    return target.with_name(f".{target.name}.finetune-partial")


def _is_ours(path: Path):
    """check_output's `replaceable`: a folder a finished `vecpipe finetune` wrote."""
    return None if (path / METADATA).is_file() else f"it is not a model `vecpipe finetune` wrote (no {METADATA})"


def _spool(path, work: Path) -> tuple[Path, dict]:
    """The training file (stdin copied into the work folder, so it can be read
    twice) and its size and sha256."""
    h = hashlib.sha256()
    size = 0
    if path in (None, "-"):
        local = work / "train.data"
        with open_input(path) as src, open(local, "wb") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
                dst.write(chunk)
    else:
        local = Path(path)
        open_input(path).close()  # a missing file (66), a folder (64), no permission (66): as every command says it
        with open(local, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
    return local, {"path": display_name(path), "bytes": size, "sha256": h.hexdigest()}


def _prepare_work(work: Path, resume: bool) -> dict | None:
    """The saved state of an earlier run to resume, or None (a fresh start;
    an earlier run's leftovers are removed: vecpipe made them)."""
    if work.exists() and not (work / STATE).is_file():
        raise CannotCreateError(f"{work}: exists and is not a `vecpipe finetune` work folder; remove it or pick "
                                "another output name")
    if work.exists() and resume:
        return orjson.loads((work / STATE).read_bytes())
    if work.exists():
        log.warning("starting over: removing the checkpoints of an earlier interrupted run in %s (--resume "
                    "continues from them)", work)
        shutil.rmtree(work)
    elif resume:
        log.warning("--resume: no earlier run of this output to continue; starting from the beginning")
    work.mkdir(parents=True)
    return None


def last_checkpoint(work: Path) -> str | None:
    """The newest complete checkpoint (the trainer writes trainer_state.json
    last, into the folder itself: one cut short by a signal has none)."""
    folder = work / "checkpoints"
    done = []
    for p in folder.glob("checkpoint-*") if folder.is_dir() else ():
        if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file():
            done.append((int(p.name.split("-")[-1]), p))
    return str(max(done)[1]) if done else None


def _drop_incomplete(work: Path, keep: str | None) -> None:
    """Checkpoints newer than the one resumed from were cut short: remove them."""
    for p in (work / "checkpoints").glob("checkpoint-*"):
        if keep is None or (p.name.split("-")[-1].isdigit() and int(p.name.split("-")[-1]) > int(Path(keep).name.split("-")[-1])):
            shutil.rmtree(p, ignore_errors=True)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    from vecpipe import __version__

    out = {"vecpipe": __version__}
    for pkg in ("sentence-transformers", "transformers", "torch", "datasets", "accelerate"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


# ---------------------------------------------------------------- the run


def training_arguments(opts: FinetuneOptions, loss: str, kind: str, folder: Path, *, cpu: bool, has_dev: bool):
    """The trainer's arguments (benchmarks/bench_finetune.py builds the same by hand)."""
    from sentence_transformers import SentenceTransformerTrainingArguments

    BatchSamplers = _st("training_args").BatchSamplers

    prompts = {"anchor": opts.query_prompt} if opts.query_prompt and kind != "scored" else None
    return SentenceTransformerTrainingArguments(
        output_dir=str(folder), num_train_epochs=opts.epochs, per_device_train_batch_size=opts.batch_size,
        learning_rate=opts.lr, warmup_steps=opts.warmup if opts.warmup < 1 else int(opts.warmup), seed=opts.seed,
        data_seed=opts.seed, fp16=opts.fp16, bf16=opts.bf16, gradient_accumulation_steps=opts.grad_accum,
        save_strategy="steps" if opts.save_steps else "epoch", save_steps=opts.save_steps or 500, save_total_limit=1,
        eval_strategy="epoch" if has_dev else "no", logging_steps=opts.logging_steps, report_to="none",
        disable_tqdm=True, use_cpu=cpu, dataloader_num_workers=0, prompts=prompts,
        # in-batch negatives must not meet their own text as a negative (sentence-transformers' advice)
        batch_sampler=BatchSamplers.NO_DUPLICATES if loss in IN_BATCH else BatchSamplers.BATCH_SAMPLER,
    )


def finetune(spec, train, out, opts: FinetuneOptions, *, dev=None, resume: bool = False,
             unicode_errors: str = "strict") -> dict:
    """Train `spec` (a ModelSpec) on `train` (a path or '-') into the folder
    `out`; returns the metadata written beside the model."""
    check_extras()
    if (opts.fp16 or opts.bf16) and not _cuda_wanted(spec.device):
        raise UsageError(f"--{'fp16' if opts.fp16 else 'bf16'} needs a CUDA GPU (mixed precision on CPU is not "
                         "supported here); leave it out to train in float32")
    if dev is not None and not Path(dev).exists():
        from vecpipe.core.errors import NoInputError

        raise NoInputError(f"{dev}: no such file or folder")
    check_output(out, folder=True, replaceable=_is_ours)
    made = make_parents(out)
    try:
        meta = _locked(spec, train, out, opts, dev, resume, unicode_errors)
    except BaseException:
        remove_made(made)
        raise
    return meta


def _locked(spec, train, out, opts, dev, resume, unicode_errors) -> dict:
    with lock_output(out):
        work = work_folder(out)
        saved = _prepare_work(work, resume)
        ok = False
        try:
            meta = _run(spec, train, out, opts, dev, work, saved, unicode_errors)
            ok = True
        finally:
            if ok:
                shutil.rmtree(work, ignore_errors=True)
            elif last_checkpoint(work) is None:
                shutil.rmtree(work, ignore_errors=True)  # nothing to resume from
            else:
                log.warning("checkpoints kept in %s: continue with --resume", work)
    return meta


def _cuda_wanted(device) -> bool:
    if device not in (None, "auto"):
        return str(device).startswith("cuda")
    import torch

    return torch.cuda.is_available()


def _run(spec, train, out, opts: FinetuneOptions, dev, work: Path, saved: dict | None, unicode_errors) -> dict:
    started = time.perf_counter()
    local, data_info = _spool(train, work)
    data = read_training_data(local, display_name(train), on_error=opts.on_error, unicode_errors=unicode_errors)
    loss_name = choose_loss(data.kind, opts.loss)
    fingerprint = {"model": spec.name, "max_length": spec.max_length, "pooling": spec.pooling,
                   "data_sha256": data_info["sha256"], "dev": str(dev) if dev else None, "options": asdict(opts)}
    if saved is not None and saved.get("fingerprint") != fingerprint:
        raise UsageError(f"--resume: the interrupted run in {work} was made with other data, model or options; "
                         "run again without --resume to start over")
    if data.skipped:
        log.warning("%d bad record(s) skipped", data.skipped)
    if data.dropped_negatives:
        log.warning("records have different numbers of negatives: %d beyond the smallest count were left out",
                    data.dropped_negatives)

    encoder = spec.load()
    model = getattr(encoder, "model", None)
    if model is None or not hasattr(model, "fit"):
        raise UsageError(f"{spec.name}: finetune trains sentence-transformers models, not word vectors")
    if opts.query_prompt is not None:
        model.prompts = {**(model.prompts or {}), "query": opts.query_prompt}
    trained = apply_bitfit(model) if opts.bitfit else sum(p.numel() for p in model.parameters() if p.requires_grad)

    before = saved.get("before") if saved else None
    if dev is not None and before is None:
        before = dev_evaluate(encoder, dev, opts.query_prompt)

    def keep(figures):  # the state a --resume starts from: dev figures of the epochs done so far included
        (work / STATE).write_bytes(orjson.dumps({"fingerprint": fingerprint, "before": before, "epochs": figures}))

    checkpoint = last_checkpoint(work) if saved else None
    done_steps = int(Path(checkpoint).name.split("-")[-1]) if checkpoint else 0
    # an epoch's figures stay when its end is in the checkpoint resumed from; later ones are made again
    figures: list = [f for f in (saved or {}).get("epochs", []) if f.get("steps", 0) <= done_steps]
    keep(figures)
    trainer = _trainer(model, data, loss_name, opts, work, encoder, dev, figures, keep)
    if saved and (work / "checkpoints").is_dir():
        _drop_incomplete(work, checkpoint)
    train_started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=checkpoint)
    train_seconds = time.perf_counter() - train_started
    after = dev_evaluate(encoder, dev, opts.query_prompt) if dev is not None else None

    meta = {
        "base_model": spec.name, "data": {**data_info, "kind": data.kind, "examples": len(data),
                                          "skipped": data.skipped, "columns": list(data.columns)},
        "loss": loss_name, "options": {**asdict(opts), "max_length": model.max_seq_length, "pooling": spec.pooling},
        "query_prompt": opts.query_prompt, "trainable_parameters": int(trained),
        "dev": {"path": str(dev), "before": before, "epochs": figures, "after": after} if dev else None,
        "training": {"steps": int(output.global_step),
                     "final_loss": run_mean_loss(trainer, float(output.training_loss), int(output.global_step), done_steps),
                     "losses": _losses(trainer), "resumed_from": Path(checkpoint).name if checkpoint else None,
                     "seconds": round(train_seconds, 3),
                     "examples_per_second": output.metrics.get("train_samples_per_second")},
        "versions": _versions(), "seconds": round(time.perf_counter() - started, 3),
    }
    model.eval()
    with atomic_path(out, folder=True, replaceable=_is_ours) as tmp:
        model.save(str(tmp), create_model_card=False)
        (tmp / METADATA).write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    return meta


def run_mean_loss(trainer, session_mean: float, global_step: int, done_steps: int) -> float:
    """The mean training loss over the whole run, as an uninterrupted run
    reports it. The trainer's figure covers only the steps since a resume (its
    sum starts afresh); the steps before the checkpoint come back from the
    logged losses (each the mean since the log before), exact when the
    checkpoint falls on a logging step."""
    if not done_steps:
        return session_mean
    # transformers 5 divides by the steps of this session; 4.x (no _initial_global_step) by all of them
    session_steps = global_step - getattr(trainer, "_initial_global_step", 0)
    total, steps, last = session_mean * session_steps, global_step - done_steps, 0
    for e in _losses(trainer):
        if e["step"] <= done_steps:
            total += e["loss"] * (e["step"] - last)
            steps += e["step"] - last
            last = e["step"]
    return total / steps if steps else session_mean  # nothing trained nor logged: the trainer's own figure


def _losses(trainer) -> list:
    """The logged losses of the whole run: the trainer's log history, which a
    resumed run reads back from its checkpoint."""
    return [{"step": int(e["step"]), "loss": float(e["loss"])} for e in trainer.state.log_history if "loss" in e and "step" in e]


def _trainer(model, data: TrainingData, loss_name, opts, work, encoder, dev, figures, keep=None):
    import datasets
    from sentence_transformers import SentenceTransformerTrainer

    from vecpipe.core.models.batching import choose_devices

    if len(data) < 1:
        raise DataError("no training examples", None)
    dataset = datasets.Dataset.from_dict(data.columns)
    cpu = choose_devices(encoder.device)[0] == "cpu"
    args = training_arguments(opts, loss_name, data.kind, work / "checkpoints", cpu=cpu, has_dev=dev is not None)
    evaluator = _dev_evaluator(encoder, dev, opts.query_prompt, figures, keep) if dev is not None else None
    callbacks = [_progress_callback()] + [make() for make in EXTRA_CALLBACKS]
    class Trainer(SentenceTransformerTrainer):
        def add_model_card_callback(self, default_args_dict):
            pass  # vecpipe writes vecpipe_finetune.json, not a model card (and no "widget examples" bar)

    trainer = Trainer(model=model, args=args, train_dataset=dataset, loss=make_loss(loss_name, model, opts),
                      evaluator=evaluator, callbacks=callbacks)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):  # they print the logs on stdout; ours shows them on stderr
        trainer.remove_callback(cb)
    return trainer
