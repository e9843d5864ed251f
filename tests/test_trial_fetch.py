"""A new user's trial of `vecpipe fetch`, `vecpipe doctor` and the behaviours
every command shares: what tripped them, each pinned by a test. The servers
are the house fixture of test_fetch.py (127.0.0.1 only, stopped by the test)."""
import bz2
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import conftest
from conftest import cjk_words, run_vecpipe, write_w2v_text
import test_fetch
from test_fetch import _Handler, _overlay, random_bytes, sha
from vecpipe.core.errors import UnavailableError
from vecpipe.core.fetch import catalog
from vecpipe.core.fetch.fetch import FetchOptions, fetch_entry

# the loopback server and the private cache of test_fetch, used here as fixtures
server, home, pku = test_fetch.server, test_fetch.home, conftest.pku
_plain_get = _Handler.do_GET


class _Trickle:
    """The house handler, plus paths served slowly (`trickle`: path -> (bytes per
    write, seconds between writes)), honouring Range like the plain ones."""

    def do_GET(self):
        st = self.server.state
        slow = getattr(st, "trickle", {}).get(self.path)
        if slow is None:
            return _plain_get(self)
        with st.lock:
            st.requests.append((self.path, self.headers.get("Range")))
        data = st.files[self.path]
        start, rng = 0, self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Connection", "close")
        self.end_headers()
        step, pause = slow
        try:
            for i in range(start, len(data), step):
                self.wfile.write(data[i:i + step])
                self.wfile.flush()
                time.sleep(pause)
        except OSError:
            pass  # the client went away


@pytest.fixture
def trickle(server, monkeypatch):
    monkeypatch.setattr(test_fetch._Handler, "do_GET", _Trickle.do_GET)
    server.trickle = {}
    return server


def _raw(name, url, data=None, **kw):
    d = {"name": name, "kind": "dataset", "format": "text", "urls": [url], "size": None if data is None else len(data),
         "sha256": None if data is None else sha(data), "licence": "", "citation": "", "notes": ""}
    d.update(kw)
    return d


def _popen(*args):
    # SIGINT at its default even when the test runner was started in the background
    return subprocess.Popen([sys.executable, "-m", "vecpipe", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


# ---------------------------------------------------------------- slow servers


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_a_slow_download_is_kept_as_it_arrives_so_an_interrupted_fetch_resumes(trickle, tmp_path, home, monkeypatch,
                                                                                 sig, code):
    """Bytes reach the .part file as they arrive (not a megabyte at a time): Ctrl-C
    or SIGTERM after a few seconds keeps them, and the next run resumes from there."""
    data = random_bytes(120_000, seed=21)
    trickle.files["/slow.bin"] = data
    trickle.trickle["/slow.bin"] = (2000, 0.05)  # 40 kB/s: 3 s for the whole file
    monkeypatch.setenv("VECPIPE_CATALOG", str(_overlay(tmp_path, [_raw("t.slow", trickle.base + "/slow.bin", data,
                                                                          filename="slow.bin")])))
    part = home / "t.slow" / "slow.bin.part"
    proc = _popen("fetch", "t.slow", "--allow-http")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None and not (part.exists() and part.stat().st_size >= 10_000):
        time.sleep(0.02)
    assert proc.poll() is None, "the fetch ended before any byte reached the partial file"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == code, err
    kept = part.stat().st_size
    assert 10_000 <= kept < len(data) and part.read_bytes() == data[:kept]
    assert catalog.resolve_local("t.slow") is None
    r = run_vecpipe("fetch", "t.slow", "--allow-http")
    assert r.returncode == 0, r.stderr
    assert (home / "t.slow" / "slow.bin").read_bytes() == data
    assert trickle.hits("/slow.bin")[-1] == f"bytes={kept}-"


def test_max_time_stops_a_server_that_trickles(trickle, home):
    """--max-time bounds the fetch even when bytes keep coming, slowly."""
    data = random_bytes(200_000, seed=22)
    trickle.files["/trickle.bin"] = data
    trickle.trickle["/trickle.bin"] = (1000, 0.02)  # 50 kB/s: 4 s for the whole file
    e = catalog.Entry(name="t.trickle", kind="dataset", format="text", urls=(trickle.base + "/trickle.bin",))
    t0 = time.monotonic()
    with pytest.raises(UnavailableError, match=r"--max-time 1s reached; the \d+ bytes received are kept"):
        fetch_entry(e, FetchOptions(allow_http=True, timeout=5, retries=0, max_time=1))
    assert time.monotonic() - t0 < 2.5
    part = home / "t.trickle" / "trickle.bin.part"
    assert 0 < part.stat().st_size < len(data) and part.read_bytes() == data[:part.stat().st_size]


# ---------------------------------------------------------------- --from


def _static_overlay(tmp_path, monkeypatch, name="t.mine"):
    """A word-vector entry with no download and no checksum: registered by hand."""
    entries = [{"name": name, "kind": "static", "format": "word2vec", "urls": [], "size": None, "sha256": None,
                "licence": "", "citation": "", "notes": "", "filename": "mine.txt.bz2",
                "manual": [{"site": "a page", "url": "https://example.org/mine"}]}]
    monkeypatch.setenv("VECPIPE_CATALOG", str(_overlay(tmp_path, entries)))


def test_registering_another_file_replaces_the_old_one_and_its_vecdir(tmp_path, home, monkeypatch, invoke):
    """--from a second file (a corrected download) must not leave -m NAME on the
    vecdir converted from the first one, nor the first file beside the second."""
    _static_overlay(tmp_path, monkeypatch)
    rng = np.random.default_rng(3)
    old_words, new_words = cjk_words(20, seed=31), cjk_words(20, seed=32)
    old = write_w2v_text(tmp_path / "old.txt", old_words, rng.standard_normal((20, 4)).astype(np.float32))
    old.with_suffix(".bz2").write_bytes(bz2.compress(old.read_bytes()))
    new = write_w2v_text(tmp_path / "new.txt", new_words, rng.standard_normal((20, 4)).astype(np.float32))
    r = invoke("fetch", "t.mine", "--from", old.with_suffix(".bz2"), "--convert")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(home / "t.mine" / "vecdir")
    r = invoke("fetch", "t.mine", "--from", new)  # plain text this time: cached as mine.txt
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(home / "t.mine" / "mine.txt")
    assert sorted(p.name for p in (home / "t.mine").iterdir()) == ["manifest.json", "mine.txt"]
    r = invoke("knn", "-m", "t.mine", new_words[0], "-k", "1", "--flat")
    assert r.exit_code == 0 and r.stdout.split("\t")[0] == new_words[0], r.stderr
    r = invoke("fetch", "t.mine", "--convert")  # converts the new file, not the old
    vecdir = home / "t.mine" / "vecdir"
    assert r.stdout.strip() == str(vecdir)
    assert (vecdir / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1] == new_words


def test_an_empty_file_is_not_registered(tmp_path, home, monkeypatch, invoke):
    _static_overlay(tmp_path, monkeypatch)
    empty = tmp_path / "mine.txt.bz2"
    empty.write_bytes(b"")
    r = invoke("fetch", "t.mine", "--from", empty)
    assert r.exit_code == 65, r.stderr
    assert r.stderr.strip().splitlines() == [f"vecpipe: error: {empty}: t.mine: the file is empty; "
                                             f"{empty} was left as it is, nothing entered the cache"]
    assert catalog.resolve_local("t.mine") is None and empty.exists()


def test_an_empty_download_does_not_enter_the_cache(server, home):
    server.files["/empty.txt"] = b""
    e = catalog.Entry(name="t.empty", kind="dataset", format="text", urls=(server.base + "/empty.txt",))
    with pytest.raises(Exception, match=r"t.empty: the download is empty") as info:
        fetch_entry(e, FetchOptions(allow_http=True, retries=0))
    assert info.value.exit_code == 65
    assert catalog.resolve_local(e) is None


def test_a_truncated_file_registered_by_hand_is_named_in_the_error(tmp_path, home, monkeypatch, invoke):
    """The error names the user's file, not the cache's staging copy, and does not speak of a download."""
    _static_overlay(tmp_path, monkeypatch)
    whole = bz2.compress(write_w2v_text(tmp_path / "v.txt", cjk_words(200), np.ones((200, 8), np.float32)).read_bytes())
    cut = tmp_path / "cut.bz2"
    cut.write_bytes(whole[: len(whole) // 2])
    r = invoke("fetch", "t.mine", "--from", cut)
    assert r.exit_code == 65, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vecpipe: error: {cut}: t.mine: the bz2 stream is truncated"), lines
    assert ".from" not in lines[0] and "download" not in lines[0]
    assert lines[0].endswith(f"{cut} was left as it is, nothing entered the cache")
    assert catalog.resolve_local("t.mine") is None


# ---------------------------------------------------------------- $VECPIPE_CATALOG, the lock


def test_a_catalog_file_with_a_bom_is_read(tmp_path, monkeypatch, invoke):
    """A catalog edited in Notepad starts with a UTF-8 BOM; every other input of vecpipe ignores it."""
    path = _overlay(tmp_path, [_raw("t.bom", "https://example.org/x.txt")])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    monkeypatch.setenv("VECPIPE_CATALOG", str(path))
    r = invoke("fetch", "--info", "t.bom", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["urls"] == ["https://example.org/x.txt"]


def test_a_missing_catalog_file_is_a_missing_input(tmp_path, monkeypatch, invoke):
    missing = tmp_path / "nowhere.json"
    monkeypatch.setenv("VECPIPE_CATALOG", str(missing))
    r = invoke("fetch", "--list")
    assert r.exit_code == 66, r.stderr
    assert r.stderr == f"vecpipe: error: {missing}: catalog file not found (check $VECPIPE_CATALOG)\n"


def test_a_second_fetch_of_the_same_name_says_it_waits(trickle, tmp_path, home, monkeypatch):
    """Two fetches of one name: the second waits for the first (one download), and says so
    rather than hanging silently; then it answers from the cache."""
    data = random_bytes(60_000, seed=23)
    trickle.files["/w.bin"] = data
    trickle.trickle["/w.bin"] = (2000, 0.05)  # 1.5 s
    monkeypatch.setenv("VECPIPE_CATALOG", str(_overlay(tmp_path, [_raw("t.wait", trickle.base + "/w.bin", data,
                                                                          filename="w.bin")])))
    first = _popen("fetch", "t.wait", "--allow-http")
    part = home / "t.wait" / "w.bin.part"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (part.exists() and part.stat().st_size):
        time.sleep(0.02)
    second = run_vecpipe("fetch", "t.wait", "--allow-http", timeout=60)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    assert second.stdout == out == f"{home / 't.wait' / 'w.bin'}\n".encode()
    assert re.fullmatch(r"vecpipe: warning: t\.wait: another vecpipe \(pid \d+\) is fetching it; waiting\n", second.stderr)
    assert trickle.hits("/w.bin") == [None]  # one download


# ---------------------------------------------------------------- doctor


def test_doctor_reports_a_torch_that_fails_to_import_instead_of_failing(tmp_path):
    """doctor is what a user runs when things break: a broken torch (a CUDA library
    missing) is reported in its output, not turned into doctor's own error."""
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise OSError("libcudart.so.12: cannot open shared object file")\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    proc = subprocess.run([sys.executable, "-m", "vecpipe", "doctor"], capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert ("devices: torch failed: OSError: libcudart.so.12: cannot open shared object file"
            in proc.stdout.decode().splitlines())
    proc = subprocess.run([sys.executable, "-m", "vecpipe", "doctor", "--json"], capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["devices"] == {"error": "OSError: libcudart.so.12: cannot open shared object file"}


def test_doctor_lists_every_extra_and_the_variables_that_change_behaviour(tmp_path, monkeypatch, invoke):
    import importlib.metadata as md

    monkeypatch.setenv("VECPIPE_CATALOG", str(_overlay(tmp_path, [])))
    monkeypatch.setenv("VECPIPE_OFFLINE", "1")
    r = invoke("doctor", "--json", "--no-devices")
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    for dist in ("pyarrow", "ray", "datasets", "accelerate"):  # the [parquet], [ray] and [train] extras
        assert info["extras"][dist] == md.version(dist)
    assert info["env"]["VECPIPE_CATALOG"] == str(tmp_path / "extra-catalog.json")
    assert info["env"]["VECPIPE_OFFLINE"] == "1"
    assert info["env"]["HF_HUB_CACHE"] == os.environ["HF_HUB_CACHE"]  # set by the home fixture


# ---------------------------------------------------------------- every command


@pytest.mark.parametrize("args", [("fetch", "--list"), ("fetch", "--list", "--json"), ("doctor", "--no-devices"),
                                  ("--help",), ("convert", "PKU", "--to", "jsonl")])
def test_a_full_stdout_is_named_in_one_line(args, pku):
    """`> /dev/full` (a full disk under a redirect): exit 74 with one line that says it was stdout."""
    args = [str(pku) if a == "PKU" else a for a in args]
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "vecpipe", *args], stdout=full, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 74, proc.stderr
    assert proc.stderr.decode() == "vecpipe: error: stdout: No space left on device\n"


def test_a_model_from_vecpipe_model_says_where_it_came_from(monkeypatch, invoke):
    """A user who set $VECPIPE_MODEL long ago and forgot sees why an unknown model is asked for."""
    monkeypatch.setenv("VECPIPE_MODEL", "old/zhihu.vecdir")
    r = invoke("knn", "悟空", "-k", "1")
    assert r.exit_code == 66
    assert r.stderr == "vecpipe: error: old/zhihu.vecdir: no such file or folder (-m taken from $VECPIPE_MODEL)\n"
    r = invoke("knn", "-m", "builtin:zh-classic", "悟空", "-k", "1", "--flat")  # -m wins over the variable
    assert r.exit_code == 0 and r.stdout.startswith("悟空\t1\t"), r.stderr


def test_the_default_model_says_it_is_the_default(monkeypatch, invoke):
    monkeypatch.delenv("VECPIPE_MODEL", raising=False)
    r = invoke("encode", input="孙悟空\n")
    assert r.exit_code == 69
    assert r.stderr.endswith("; run: vecpipe fetch bge-small-zh (bge-small-zh is the default model: "
                             "choose one with -m or $VECPIPE_MODEL)\n"), r.stderr


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs a folder no one may create files in (/sys)")
def test_an_output_in_a_folder_that_refuses_files_is_named_without_the_lock(pku, invoke):
    """-o into a read-only place: the error names the output and its folder, not vecpipe's lock file."""
    r = invoke("convert", pku, "--limit", "3", "-o", "/sys/v.txt")
    assert r.exit_code == 73
    assert r.stderr.startswith("vecpipe: error: /sys/v.txt: cannot create files in /sys: "), r.stderr
    assert ".lock" not in r.stderr and len(r.stderr.splitlines()) == 1


def test_the_list_says_the_builtin_model_comes_with_vecpipe(invoke):
    r = invoke("fetch", "--list", "--kind", "static")
    row = next(line.split() for line in r.stdout.splitlines() if line.startswith("zh-classic "))
    assert row == ["zh-classic", "static", "100", "vecdir", "builtin", "yes"]


def test_a_plain_http_hf_endpoint_is_named_as_the_variable(monkeypatch, invoke):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    r = invoke("fetch", "bge-small-zh")
    assert r.exit_code == 64
    assert r.stderr.startswith("vecpipe: error: HF_ENDPOINT=http://127.0.0.1:9: plain HTTP is refused"), r.stderr


def test_a_download_larger_than_the_free_space_stops_before_the_body(server, home, monkeypatch):
    """A 16 GB Tencent file on a disk with 10 GB free fails at once, not after an hour of download."""
    import shutil
    from collections import namedtuple

    from vecpipe.core.errors import OutputError

    data = random_bytes(50_000, seed=24)
    server.files["/huge.bin"] = data
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 20_000, 20_000))
    e = catalog.Entry(name="t.huge", kind="dataset", format="text", urls=(server.base + "/huge.bin",))
    with pytest.raises(OutputError, match=r"needs 50000 bytes but only 20000 are free in .*t\.huge; free some space "
                                          r"\(or set \$VECPIPE_HOME\) and fetch again") as info:
        fetch_entry(e, FetchOptions(allow_http=True, retries=3, backoff=0.01))
    assert info.value.exit_code == 74
    assert len(server.hits("/huge.bin")) == 1  # not retried: waiting does not free a disk
    assert not (home / "t.huge" / "huge.bin.part").exists() or (home / "t.huge" / "huge.bin.part").stat().st_size == 0


def _sh(command: str):
    return subprocess.run(["bash", "-c", command.replace("VP", f"{sys.executable} -m vecpipe")], capture_output=True,
                          timeout=60)


def test_closed_standard_streams_are_io_errors_not_crashes(pku, tmp_path):
    """A stream closed by the shell (`>&-`, `<&-`, `2>&-`) is a one-line I/O error naming it (74), never an
    internal error; an error message never goes to stdout when stderr is closed; a command that does not
    need the closed stream works."""
    r = _sh("VP fetch --list >&-")
    assert (r.returncode, r.stderr) == (74, b"vecpipe: error: stdout: Bad file descriptor\n")
    r = _sh(f"VP convert {pku} --to jsonl --limit 3 >&-")
    assert (r.returncode, r.stderr) == (74, b"vecpipe: error: stdout: Bad file descriptor\n")
    r = _sh("VP knn -m builtin:zh-classic -k 1 <&-")  # queries from stdin
    assert (r.returncode, r.stderr) == (74, b"vecpipe: error: stdin: Bad file descriptor\n")
    r = _sh("VP fetch no-such-name 2>&-")
    assert (r.returncode, r.stdout) == (64, b"")
    r = _sh(f"VP convert {pku} --limit 3 -o {tmp_path / 'v.txt'} >&- <&-")
    assert r.returncode == 0 and r.stderr == b"" and (tmp_path / "v.txt").read_text(encoding="utf-8").startswith("3 50\n")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_closed_terminal_cleans_up_as_sigterm_does(sig, tmp_path):
    """SIGHUP (the terminal window closed, an ssh session dropped) ends a run as SIGTERM
    does: exit 128 + 1, no partial output, no lock file left beside -o."""
    out = tmp_path / "x.npy"
    proc = subprocess.Popen([sys.executable, "-m", "vecpipe", "encode", "-m", "builtin:zh-classic", "-o", out,
                             "--batch-size", "64"], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write("孙悟空大闹天宫\n".encode() * 5000)  # more than a batch; stdin stays open
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.endswith(".partial") or p.suffix == ".tmp"
                                                  for p in tmp_path.iterdir()):
        time.sleep(0.05)
    assert proc.poll() is None and any(tmp_path.iterdir()), "no partial output appeared"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    assert err.decode().endswith(f"vecpipe: error: terminated ({signal.Signals(sig).name})\n"), err
    assert list(tmp_path.iterdir()) == []


def test_an_error_page_served_for_a_compressed_file_is_refused(server, home, invoke, tmp_path, monkeypatch):
    """A proxy or captive portal answers 200 with an HTML page: with no checksum in the catalog, the
    file's name (.bz2) still says what it must be, so the page never enters the cache as the vectors."""
    page = b"<!DOCTYPE html><html><body>Please log in to the hotel wifi</body></html>\n"
    server.files["/sgns.txt.bz2"] = page
    monkeypatch.setenv("VECPIPE_CATALOG", str(_overlay(tmp_path, [_raw("t.portal", server.base + "/sgns.txt.bz2",
                                                                          kind="static", format="word2vec")])))
    r = invoke("fetch", "t.portal", "--allow-http", "--retries", "0")
    assert r.exit_code == 65, r.stderr
    assert r.stderr == ("vecpipe: error: t.portal: the download is not the bz2 file its name sgns.txt.bz2 says "
                        "(it starts with '<!DOCTYPE html><html><bo': an error page?); the partial file was deleted, "
                        "nothing entered the cache\n")
    assert catalog.resolve_local("t.portal") is None and not (home / "t.portal").exists()


def test_man_pages_list_no_option_without_a_description():
    """An argument ([SRC], DATASET) is in the SYNOPSIS; under OPTIONS it showed as a name with an empty line."""
    from vecpipe.cli.docs import render_all

    for rel, text in render_all().items():
        if rel.startswith("man/"):
            lines = text.split("\n")
            empty = [lines[i + 1] for i in range(len(lines) - 2) if lines[i] == ".TP" and lines[i + 2] in ("", ".TP")]
            assert empty == [], f"{rel}: {empty}"
