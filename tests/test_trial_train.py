"""A new user's trial of train-w2v, finetune and mine on the real corpora: what they tripped on, fixed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import DATA, corpus_copy_made, run_vecpipe

PD = DATA / "peoples-daily-199801" / "199801.seg.txt"
NOVELS = DATA / "classical-novels-zh"
STS = DATA / "STS-B-zh"
W2V = ("--dim", "8", "--epochs", "1", "--min-count", "2", "--workers", "1", "--seed", "3")


def need(path):
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set VECPIPE_DATA)")
    return path


def pd_lines(start, stop):
    with open(need(PD), encoding="utf-8") as f:
        return f.readlines()[start:stop]


def write(path, lines):
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_a_folder_is_read_as_its_files_in_name_order(tmp_path, invoke):
    """gensim's PathLineSentences reads a folder; so does train-w2v (hidden files and subfolders left out)."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    write(folder / "b.txt", pd_lines(300, 600))
    write(folder / "a.txt", pd_lines(0, 300))
    write(folder / ".hidden.txt", ["hiddenword 不 读\n"] * 50)
    (folder / "sub").mkdir()
    write(folder / "sub" / "c.txt", ["subfolderword 不 读\n"] * 50)
    r = invoke("train-w2v", folder, *W2V, "-o", tmp_path / "from_folder.vecdir")
    assert r.exit_code == 0, r.output
    assert "1 subfolder(s) not read" in r.stderr
    r = invoke("train-w2v", folder / "a.txt", folder / "b.txt", *W2V, "-o", tmp_path / "from_files.vecdir")
    assert r.exit_code == 0, r.output
    a, b = tmp_path / "from_folder.vecdir", tmp_path / "from_files.vecdir"
    assert (a / "vectors.npy").read_bytes() == (b / "vectors.npy").read_bytes()
    assert (a / "vocab.txt").read_text(encoding="utf-8") == (b / "vocab.txt").read_text(encoding="utf-8")
    meta = json.loads((a / "meta.json").read_text())["training"]
    assert [Path(c["path"]).name for c in meta["corpus"]] == ["a.txt", "b.txt"]
    vocab = (a / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert "hiddenword" not in vocab and "subfolderword" not in vocab


def test_an_empty_folder_is_a_missing_input(tmp_path, invoke):
    (tmp_path / "empty").mkdir()
    r = invoke("train-w2v", tmp_path / "empty", *W2V, "-o", tmp_path / "out.vecdir")
    assert r.exit_code == 66 and "no corpus files" in r.stderr and not (tmp_path / "out.vecdir").exists()


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, invoke):
    corpus = write(tmp_path / "c.txt", pd_lines(0, 200))
    before = corpus.read_bytes()
    for args in (["-o", corpus], ["-o", tmp_path / "v.txt", "--context-vectors", corpus]):
        r = invoke("train-w2v", corpus, *W2V, *args)
        assert r.exit_code == 64 and "is also an input" in r.stderr, r.output
        assert corpus.read_bytes() == before
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"text": "今天 天气", "text_pos": "天气 很 好"}\n', encoding="utf-8")
    q_before = queries.read_bytes()
    for out in (queries, corpus):
        r = invoke("mine", "-m", "fake:8", queries, "--corpus", corpus, "-o", out)
        assert r.exit_code == 64 and "is also an input" in r.stderr, r.output
    assert queries.read_bytes() == q_before and corpus.read_bytes() == before


def test_words_per_second_leave_out_the_gensim_import(tmp_path):
    """The summary's words/s once counted the ~2 s import of gensim as training (the bar said 190k words/s, the
    summary 43k on 110k tokens)."""
    corpus = write(tmp_path / "c.txt", pd_lines(0, 200))
    r = run_vecpipe("train-w2v", corpus, *W2V, "-o", tmp_path / "v.vecdir")
    assert r.returncode == 0, r.stderr
    seconds = json.loads((tmp_path / "v.vecdir" / "meta.json").read_text())["training"]["seconds"]
    assert seconds["train"] < seconds["import"]  # 10k tokens train in milliseconds; the import takes a second or more
    assert seconds["total"] >= seconds["read"] + seconds["import"] + seconds["train"] - 1e-3


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="the copy is unlinked where /proc/self/fd exists")
def test_sigkill_leaves_no_tokenized_copy_in_tmpdir(tmp_path):
    """The tokenized copy is as big as the corpus; kill -9 once left it in $TMPDIR for good."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    cmd = [sys.executable, "-m", "vecpipe", "-q", "train-w2v", "-", "--tokenize", "char", "--dim", "8", "--epochs", "50",
           "--min-count", "1", "-o", str(tmp_path / "v.vecdir")]
    text = need(NOVELS / "xiyouji.txt").read_bytes()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, TMPDIR=str(tmpdir)))
    proc.stdin.write(text)
    proc.stdin.close()
    deadline = time.time() + 300
    while time.time() < deadline and not corpus_copy_made(proc.pid, tmpdir) and proc.poll() is None:
        time.sleep(0.05)
    assert corpus_copy_made(proc.pid, tmpdir), proc.stderr.read().decode()
    assert os.listdir(tmpdir) == []  # open, but already without a name
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert os.listdir(tmpdir) == [] and not (tmp_path / "v.vecdir").exists()


# ---------------------------------------------------------------- finetune


def test_finetune_train_that_is_a_folder_or_missing_says_so(tmp_path, invoke):
    r = invoke("finetune", "-m", "fake:8", need(STS), "-o", tmp_path / "out")
    assert r.exit_code == 64 and "is a directory" in r.stderr and "Traceback" not in r.output
    r = invoke("finetune", "-m", "fake:8", tmp_path / "nope.tsv", "-o", tmp_path / "out")
    assert r.exit_code == 66 and "nope.tsv: no such file" in r.stderr
    assert sorted(os.listdir(tmp_path)) == []


def _trainer(losses, initial_step):
    return SimpleNamespace(state=SimpleNamespace(log_history=[{"step": s, "loss": v} for s, v in losses]),
                           _initial_global_step=initial_step)


def test_a_resumed_run_reports_the_mean_loss_of_the_whole_run():
    """The trainer's figure after --resume covers only the steps since the checkpoint (0.5589 where the
    uninterrupted run of the same weights said 0.5720); the record now gives the whole run's."""
    from vecpipe.core.train.finetune import run_mean_loss

    step_losses = [0.9, 0.2, 0.05, 0.75, 0.1, 0.5, 1.9, 0.0]
    whole = sum(step_losses) / 8
    logged = [(s + 1, v) for s, v in enumerate(step_losses)]  # --logging-steps 1
    session = sum(step_losses[2:]) / 6  # what the trainer says after resuming from checkpoint-2
    assert run_mean_loss(_trainer(logged, 2), session, 8, 2) == pytest.approx(whole, abs=1e-12)
    # --logging-steps 2, checkpoint-4: each logged loss is the mean of its two steps
    logged2 = [(s, (step_losses[s - 2] + step_losses[s - 1]) / 2) for s in (2, 4, 6, 8)]
    session2 = sum(step_losses[4:]) / 4
    assert run_mean_loss(_trainer(logged2, 4), session2, 8, 4) == pytest.approx(whole, abs=1e-12)
    assert run_mean_loss(_trainer(logged, 0), whole, 8, 0) == whole  # an uninterrupted run: the trainer's own figure
    # resumed from the last checkpoint with nothing logged (--logging-steps above the steps): no division by zero
    assert run_mean_loss(_trainer([], 8), 0.0, 8, 8) == 0.0


def test_no_corpus_and_a_terminal_on_stdin_is_a_usage_error(tmp_path):
    """`vecpipe train-w2v -o x.vecdir` (the corpus forgotten) once sat silently waiting for text typed in."""
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "vecpipe", "train-w2v", "-o", str(tmp_path / "x.vecdir")],
                              stdin=follower, capture_output=True, timeout=120)
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 64 and b"stdin is a terminal" in proc.stderr
    assert not (tmp_path / "x.vecdir").exists()


@pytest.mark.parametrize("model", ["sgns", "ppmi"])
def test_an_empty_corpus_is_named_and_not_blamed_on_min_count(tmp_path, invoke, model):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"\r\n\n   \n")
    r = invoke("train-w2v", empty, "--model", model, "-o", tmp_path / "x.vecdir")
    assert r.exit_code == 65 and "empty.txt: no tokens: the corpus is empty or has only blank lines" in r.stderr
    assert "--min-count" not in r.stderr and not (tmp_path / "x.vecdir").exists()


@pytest.mark.parametrize("name", ["v.npy", "ctx.NPZ"])
def test_an_npy_name_is_refused_not_made_a_folder(tmp_path, invoke, name):
    """-o v.npy once made a vecdir folder called v.npy, which numpy.load cannot open."""
    corpus = write(tmp_path / "c.txt", pd_lines(0, 50))
    args = ["-o", tmp_path / name] if name.endswith("npy") else ["-o", tmp_path / "v.vecdir", "--context-vectors", tmp_path / name]
    r = invoke("train-w2v", corpus, *W2V, *args)
    assert r.exit_code == 64 and "holds no words" in r.stderr
    assert not (tmp_path / name).exists() and not (tmp_path / "v.vecdir").exists()
    r = invoke("train-w2v", corpus, *W2V, "-o", tmp_path / "v.npy", "--to", "vecdir")  # asked for by name: as asked
    assert r.exit_code == 0 and (tmp_path / "v.npy" / "vectors.npy").is_file()


def test_mine_counts_the_records_it_skipped(tmp_path, invoke):
    """--on-error skip showed the first 5 bad records and then nothing: the total now ends on stderr, as finetune's."""
    queries = tmp_path / "q.jsonl"
    good = [json.dumps({"text": f"问题{i}", "text_pos": f"答案{i}"}, ensure_ascii=False) for i in range(4)]
    queries.write_text("\n".join(good + ['{"text": "只有问题"}'] * 7) + "\n", encoding="utf-8")
    corpus = write(tmp_path / "c.jsonl", [json.dumps({"text": f"文档{i}"}, ensure_ascii=False) + "\n" for i in range(30)]
                   + ['{"text": 3}\n'] * 2)
    r = invoke("mine", "-m", "fake:8", queries, "--corpus", corpus, "--on-error", "skip", "--range", "0-10",
               "--negatives", "2")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 4
    assert "7 bad record(s) skipped in" in r.stderr and "2 bad record(s) skipped in" in r.stderr
