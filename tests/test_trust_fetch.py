"""vecpipe fetch and the catalog against hostile or broken inputs: servers that
never finish, bodies longer than declared, hand-registered files edited later,
malformed catalog entries, a hub endpoint that never answers."""
import json
import os
import socket
import threading
import time

import pytest

from conftest import run_vecpipe
from test_fetch import FAST, _Handler, _overlay, _tar_gz, cache_files, home, random_bytes, server, sha  # noqa: F401 - fixtures
from vecpipe.core.fetch import catalog
from vecpipe.core.errors import DataError, OutputError, UnavailableError
from vecpipe.core.fetch import archives
from vecpipe.core.fetch.cache import register_file
from vecpipe.core.fetch.fetch import FetchOptions, fetch_entry
from vecpipe.core.fetch.hub import fetch_hub


_plain_get = _Handler.do_GET


class _Hostile:
    """The test server's handler, plus: paths that always hang up at a fixed byte and
    ignore Range (`always_cut`), and paths that stream more bytes than any
    catalog declares (`flood`: path -> (bytes to send, announced Content-Length or None))."""

    def do_GET(self):
        st = self.server.state
        cut = getattr(st, "always_cut", {}).get(self.path)
        flood = getattr(st, "flood", {}).get(self.path)
        if cut is None and flood is None:
            return _plain_get(self)
        with st.lock:
            st.requests.append((self.path, self.headers.get("Range")))
        self.send_response(200)
        if cut is not None:
            data = st.files[self.path]
            self.send_header("Content-Length", str(len(data)))
        elif flood[1] is not None:
            self.send_header("Content-Length", str(flood[1]))
        self.send_header("Connection", "close")
        self.end_headers()
        if cut is not None:
            self.wfile.write(data[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        block = b"x" * 65536
        st.sent = 0
        try:
            while st.sent < flood[0]:
                self.wfile.write(block)
                st.sent += len(block)
        except OSError:
            pass  # the client hung up: what we want


@pytest.fixture
def hostile(server, monkeypatch):
    """The same loopback server with the hostile handler."""
    import test_fetch

    monkeypatch.setattr(test_fetch._Handler, "do_GET", _Hostile.do_GET)
    server.always_cut, server.flood, server.sent = {}, {}, 0
    return server


def _catalog(tmp_path, monkeypatch, entries):
    monkeypatch.setenv("VECPIPE_CATALOG", str(_overlay(tmp_path, entries)))


def _raw(name, url, data=None, **kw):
    d = {"name": name, "kind": "dataset", "format": "text", "urls": [url], "size": None if data is None else len(data),
         "sha256": None if data is None else sha(data), "licence": "", "citation": "", "notes": ""}
    d.update(kw)
    return d


# ---------------------------------------------------------------- 1. bounded retries


def test_a_server_that_always_cuts_short_and_ignores_range_is_given_up(hostile, tmp_path, home, monkeypatch):
    data = random_bytes(50_000, seed=11)
    hostile.files["/cut.bin"] = data
    hostile.always_cut["/cut.bin"] = 10_000
    _catalog(tmp_path, monkeypatch, [_raw("t.cut", hostile.base + "/cut.bin", data, filename="cut.bin")])
    t0 = time.monotonic()
    r = run_vecpipe("fetch", "t.cut", "--allow-http", "--retries", "2", timeout=60)
    elapsed = time.monotonic() - t0
    assert r.returncode == 69, r.stderr
    assert "gave up after 3 tries" in r.stderr and "10000 of 50000" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == b""
    assert elapsed < 15
    assert len(hostile.hits("/cut.bin")) == 3  # the first try and 2 retries; restarts from byte 0 are no progress
    assert not (home / "t.cut" / "cut.bin").exists() and catalog.resolve_local("t.cut") is None


def test_progress_beyond_the_best_offset_resets_the_count_but_tries_stay_bounded(server, home):
    """A server honouring Range but giving a few bytes per request: each try gets further,
    yet the total number of tries is bounded."""
    data = random_bytes(40_000, seed=12)
    server.files["/slow.bin"] = data
    server.drops["/slow.bin"] = list(range(1000, 40_000, 1000))  # 1000 new bytes per request
    e = catalog.Entry(name="t.slow", kind="dataset", format="text", urls=(server.base + "/slow.bin",),
                         sha256=sha(data), size=len(data))
    with pytest.raises(UnavailableError, match=r"gave up after 10 tries"):
        fetch_entry(e, FetchOptions(allow_http=True, retries=1, backoff=0.001, timeout=5))
    assert len(server.hits("/slow.bin")) == 10  # 10 * (retries + 1) at most
    assert (home / "t.slow" / "slow.bin.part").stat().st_size == 10_000  # kept for the next run to resume


def test_max_time_bounds_the_whole_fetch(hostile, home):
    data = random_bytes(20_000, seed=13)
    hostile.files["/cut2.bin"] = data
    hostile.always_cut["/cut2.bin"] = 100
    e = catalog.Entry(name="t.maxtime", kind="dataset", format="text", urls=(hostile.base + "/cut2.bin",))
    t0 = time.monotonic()
    with pytest.raises(UnavailableError, match=r"--max-time"):
        fetch_entry(e, FetchOptions(allow_http=True, retries=1000, backoff=0.5, timeout=5, max_time=1.5))
    assert time.monotonic() - t0 < 4


# ---------------------------------------------------------------- 2. --from copies


def test_from_copies_so_a_later_edit_of_the_original_does_not_change_the_cache(tmp_path, home, invoke):
    original = tmp_path / "mine.txt"
    original.write_bytes(b"a 1 2\nb 3 4\n")
    r = invoke("fetch", "sgns.weibo.word", "--from", original)
    assert r.exit_code == 0, r.output
    cached = home / "sgns.weibo.word" / "sgns.weibo.word"
    assert r.stdout.strip() == str(cached)
    recorded = json.loads((home / "sgns.weibo.word" / "manifest.json").read_text())["sha256"]
    with open(original, "r+b") as fh:  # edited in place, as an editor or a re-download would
        fh.write(b"z 9 9\n")
    assert cached.read_bytes() == b"a 1 2\nb 3 4\n"
    assert sha(cached.read_bytes()) == recorded
    assert os.stat(cached).st_ino != os.stat(original).st_ino
    assert not list((home / "sgns.weibo.word").glob("*.from"))


def test_from_leaves_no_staging_file_when_refused(tmp_path, home, invoke):
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"not the file")
    e = catalog.Entry(name="t.fromwrong", kind="dataset", format="text", sha256=sha(b"the file"))
    with pytest.raises(DataError):
        register_file(e, wrong)
    assert cache_files(home) == [] and wrong.read_bytes() == b"not the file"


# ---------------------------------------------------------------- 3. capped at the declared size


def test_a_body_longer_than_the_declared_size_is_not_read_to_its_end(hostile, tmp_path, home, monkeypatch, invoke):
    hostile.flood["/flood.bin"] = (64 << 20, None)  # 64 MiB, no Content-Length
    _catalog(tmp_path, monkeypatch, [_raw("t.flood", hostile.base + "/flood.bin", size=100_000, filename="flood.bin")])
    r = invoke("fetch", "t.flood", "--allow-http", "--retries", "0")
    assert r.exit_code in (65, 69), r.output
    assert "more than the 100000 bytes the catalog declares" in r.stderr, r.stderr
    assert hostile.sent < 24 << 20  # it stopped reading: only socket buffers' worth went out
    assert cache_files(home) == []


def test_a_content_length_other_than_the_declared_size_fails_before_the_body(hostile, tmp_path, home, monkeypatch, invoke):
    hostile.flood["/big.bin"] = (64 << 20, 64 << 20)
    _catalog(tmp_path, monkeypatch, [_raw("t.big", hostile.base + "/big.bin", size=100_000, filename="big.bin")])
    r = invoke("fetch", "t.big", "--allow-http", "--retries", "0")
    assert r.exit_code in (65, 69), r.output
    assert f"{64 << 20} bytes" in r.stderr and "the catalog says 100000" in r.stderr, r.stderr
    assert hostile.sent < 24 << 20
    assert cache_files(home) == []


def test_an_archive_that_unpacks_beyond_the_free_space_is_not_extracted(server, home, monkeypatch):
    import collections

    data = _tar_gz({"pack/v.txt": b"a 1 2\n" * 2000})
    server.files["/pack.tar.gz"] = data
    e = catalog.Entry(name="t.full-disk", kind="static", format="glove", urls=(server.base + "/pack.tar.gz",),
                         archive="tar.gz", sha256=sha(data), size=len(data))
    usage = collections.namedtuple("usage", "total used free")
    real = archives.shutil.disk_usage
    monkeypatch.setattr(archives.shutil, "disk_usage", lambda path: usage(10_000, 9_000, 1_000))
    with pytest.raises(OutputError, match="unpacks to 12000 bytes but only 1000 are free"):
        fetch_entry(e, FAST)
    assert catalog.resolve_local(e) is None and not (home / "t.full-disk" / "files").exists()
    monkeypatch.setattr(archives.shutil, "disk_usage", real)
    path = fetch_entry(e, FAST)  # space freed: the kept download is used, not downloaded again
    assert path.read_bytes() == b"a 1 2\n" * 2000
    assert server.hits("/pack.tar.gz") == [None, f"bytes={len(data)}-"]


# ---------------------------------------------------------------- 4. catalog validation


GOOD = {"name": "t.ok", "kind": "dataset", "format": "text", "urls": ["https://example.org/f.txt"], "size": None,
        "sha256": None, "licence": "", "citation": "", "notes": ""}


@pytest.mark.parametrize("change,message", [
    ({"kind": "transformer", "format": "sentence-transformers", "hf_id": "org/model", "revision": "../../../../tmp/x"},
     "revision"),
    ({"name": "t.ok\n"}, "name"),
    ({"urls": "https://example.org/f.txt"}, "urls must be a list"),
    ({"urls": ["ftp://example.org/f.txt"]}, "urls"),
    ({"urls": ["https://example.org/.."]}, "file name"),
    ({"filename": "manifest.json"}, "filename"),
    ({"size": "100"}, "size"),
    ({"size": True}, "size"),
    ({"dim": -3}, "dim"),
    ({"sha256": "a" * 64 + "\n"}, "sha256"),
    ({"manual": [{"site": "x", "url": "https://x", "code": "1"}]}, "manual"),
    ({"manual": "https://pan.baidu.com/s/1"}, "manual"),
    ({"builtin": "../../etc"}, "builtin"),
    ({"hf_id": "../../x"}, "hf_id"),
    ({"hf_id": "org/m", "hf_repo_type": "space"}, "hf_repo_type"),
    ({"family": "no-such-family"}, "family"),
    ({"family": ["chinese-word-vectors"]}, "family"),
    ({"language": 5}, "language"),
    ({"notes": ["a"]}, "notes"),
    ({"member": "a/../../b", "archive": "zip"}, "member"),
    ({"query_instruction": 3}, "query_instruction"),
    ({"notes": "see \x1b[2J\x1b[Hthis"}, "notes must not contain control characters"),
    ({"manual": [{"site": "x", "url": "https://x/\x1b[31m"}]}, "manual"),
    ({"bogus": 1}, "unknown fields bogus"),
    ("not an object", "not an object"),
])
def test_malformed_entries_are_refused_with_their_name(tmp_path, monkeypatch, invoke, change, message):
    raw = change if isinstance(change, str) else {**GOOD, **change}
    _catalog(tmp_path, monkeypatch, [raw])
    for args in (("fetch", "--list"), ("fetch", "t.ok")):
        r = invoke(*args)
        assert r.exit_code == 65, (args, r.output)
        line = r.stderr.strip()
        assert "\n" not in line and "Traceback" not in line, line
        assert str(tmp_path / "extra-catalog.json") in line and message in line, line
        if isinstance(change, dict):
            assert repr(raw["name"]) in line, line


@pytest.mark.parametrize("content,message", [
    ('{"entries": {"name": "x"}}', '"entries" list'),
    ('{"entries": [], "families": []}', "families"),
    ('{"entries": [], "families": {"f": 3}}', "family 'f'"),
    ('{"entries": [], "extra": 1}', "unknown"),
])
def test_malformed_catalog_files_are_refused(tmp_path, monkeypatch, invoke, content, message):
    path = tmp_path / "cat.json"
    path.write_text(content)
    monkeypatch.setenv("VECPIPE_CATALOG", str(path))
    r = invoke("fetch", "--list")
    assert r.exit_code == 65 and message in r.stderr and str(path) in r.stderr, r.output


def test_a_catalog_path_that_is_a_folder_is_bad_input_not_a_crash(tmp_path, monkeypatch, invoke):
    monkeypatch.setenv("VECPIPE_CATALOG", str(tmp_path))
    r = invoke("fetch", "--list")
    assert r.exit_code == 65 and str(tmp_path) in r.stderr, r.output


def test_a_good_overlay_entry_still_loads(tmp_path, monkeypatch, invoke):
    _catalog(tmp_path, monkeypatch, [GOOD, {**GOOD, "name": "t.hub", "kind": "transformer", "urls": [],
                                             "format": "sentence-transformers", "hf_id": "org/m-1.5",
                                             "revision": "refs/pr/1"}])
    r = invoke("fetch", "--info", "t.hub", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["revision"] == "refs/pr/1"


def test_every_builtin_entry_passes_the_schema():
    assert len(catalog.names()) > 100  # loading validates every entry


def test_a_damaged_hf_ref_does_not_lead_outside_the_cache(tmp_path, home):
    e = catalog.get("text2vec-base-chinese-sentence")  # not pinned: follows refs/main
    repo = tmp_path / "hfcache" / f"models--{e.hf_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "snapshots").mkdir()
    (repo / "refs" / "main").write_text("../../../outside")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "config.json").write_text("{}")
    assert catalog.resolve_local(e) is None


# ---------------------------------------------------------------- 5. smaller


def test_sparse_ppmi_entries_have_no_dense_dimension(invoke):
    r = invoke("fetch", "--list", "--corpus", "zhihu")
    rows = {ln.split()[0]: ln.split() for ln in r.stdout.splitlines()[1:]}
    assert rows["ppmi.zhihu.word"][2] == "sparse" and rows["sgns.zhihu.word"][2] == "300"
    e = catalog.get("ppmi.zhihu.word")
    assert e.dim is None and "300 dimensions" not in e.notes
    info = invoke("fetch", "--info", "ppmi.zhihu.word").stdout
    assert "dimensions: sparse" in info and "300" not in info


def test_manual_steps_print_the_password_the_catalog_knows(invoke):
    r = invoke("fetch", "sgns.wiki.bigram")
    assert r.exit_code == 69 and "(password: jp7e)" in r.stderr, r.stderr
    r = invoke("fetch", "sgns.zhihu.word")
    assert r.exit_code == 69 and "pan.baidu.com/s/1VGOs0RH7DXE5vRrtw6boQA" in r.stderr
    assert "password" not in r.stderr  # none known, none promised


@pytest.fixture
def dead_endpoint(request):
    """127.0.0.1 port that accepts connections and never answers ("blackhole"), or a closed one."""
    if request.param == "closed":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        yield f"http://127.0.0.1:{port}"
        return
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    conns, stop = [], threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join()
    for c in conns:
        c.close()
    srv.close()


@pytest.mark.parametrize("dead_endpoint", ["blackhole", "closed"], indirect=True)
def test_an_unreachable_hub_endpoint_fails_within_the_timeout(dead_endpoint, home, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", dead_endpoint)
    e = catalog.get("m3e-small")
    result = {}

    def run():
        try:
            fetch_hub(e, FetchOptions(allow_http=True, timeout=2))
        except Exception as exc:  # noqa: BLE001
            result["exc"] = exc

    t0 = time.monotonic()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(30)
    elapsed = time.monotonic() - t0
    assert not t.is_alive(), "the hub fetch still runs after 30 s"
    assert isinstance(result.get("exc"), UnavailableError), result
    assert dead_endpoint in str(result["exc"]) and "offline?" in str(result["exc"])
    assert elapsed < 5, elapsed  # about the timeout (2 s), not the hub client's retries (24 s, or for ever)


@pytest.mark.parametrize("names,message", [
    (["t.twice", "t.twice"], "duplicate catalog name 't.twice'"),
    (["t.case", "T.CASE"], "duplicate catalog name 'T.CASE'"),
    (["SGNS.zhihu.word"], "differs from 'sgns.zhihu.word' only in case"),
])
def test_duplicate_or_case_colliding_names_are_refused(tmp_path, monkeypatch, invoke, names, message):
    _catalog(tmp_path, monkeypatch, [{**GOOD, "name": n} for n in names])
    r = invoke("fetch", "--list")
    assert r.exit_code == 65 and message in r.stderr, r.output


@pytest.mark.parametrize("dead_endpoint", ["closed"], indirect=True)
def test_encode_fetch_from_an_unreachable_hub_fails_fast_with_69(dead_endpoint, tmp_path, monkeypatch):
    """`-m ORG/NAME --fetch` downloads through sentence-transformers: the same bound applies."""
    import huggingface_hub.constants
    import sentence_transformers  # noqa: F401 - imported before the clock starts

    from vecpipe.core.models.base import load_model

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", dead_endpoint)
    monkeypatch.setenv("HF_ENDPOINT", dead_endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    t0 = time.monotonic()
    with pytest.raises(UnavailableError, match="offline\\?"):
        load_model("no-such-org/no-such-model", allow_download=True, device="cpu")
    assert time.monotonic() - t0 < 20  # the hub client's own retries: 24 s and more
