"""The catalog as data: every entry complete, names unique, every row of the
seeds' tables present, checksums only where they are known."""
import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

from conftest import DATA, REPO
from vecpipe.core.fetch import catalog, schema
from vecpipe.core.errors import DataError, UsageError

RAW = catalog.load_raw()
FAMILIES = RAW["families"]
BY_NAME = {e["name"]: e for e in RAW["entries"]}

CWV_CORPORA = ["baidubaike", "wiki", "renmin", "sogou", "financial", "zhihu", "weibo", "literature", "sikuquanshu", "merge"]
CWV_CONTEXTS = ["word", "bigram", "char", "bigram-char"]
COOC = ["word-word", "word-ngram-1-2", "word-ngram-1-3", "ngram-ngram-1-2", "word-char-1", "word-char-1-2",
        "word-char-1-4", "radical", "word-word-leftright", "word-word-distance", "word-text", "word-pos", "word-dependency"]
BGE_QUERY = "为这个句子生成表示以用于检索相关文章："
TRANSFORMERS = {
    "bge-small-zh": "BAAI/bge-small-zh", "bge-base-zh": "BAAI/bge-base-zh", "bge-large-zh": "BAAI/bge-large-zh",
    "bge-small-zh-v1.5": "BAAI/bge-small-zh-v1.5", "bge-base-zh-v1.5": "BAAI/bge-base-zh-v1.5",
    "bge-large-zh-v1.5": "BAAI/bge-large-zh-v1.5", "bge-large-zh-noinstruct": "BAAI/bge-large-zh-noinstruct",
    "bge-m3": "BAAI/bge-m3",
    "m3e-small": "moka-ai/m3e-small", "m3e-base": "moka-ai/m3e-base", "m3e-large": "moka-ai/m3e-large",
    "text2vec-base-chinese": "shibing624/text2vec-base-chinese",
    "text2vec-base-chinese-sentence": "shibing624/text2vec-base-chinese-sentence",
    "text2vec-base-chinese-paraphrase": "shibing624/text2vec-base-chinese-paraphrase",
    "text2vec-base-multilingual": "shibing624/text2vec-base-multilingual",
    "text2vec-large-chinese": "GanymedeNil/text2vec-large-chinese",
    "text2vec-bge-large-chinese": "shibing624/text2vec-bge-large-chinese",
    "paraphrase-multilingual-MiniLM-L12-v2": "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
}
STATIC_OTHERS = ["tencent-zh-d200-v0.1.0", "tencent-zh-d100-v0.2.0", "tencent-zh-d100-v0.2.0-s", "tencent-zh-d200-v0.2.0",
                 "tencent-zh-d200-v0.2.0-s", "w2v-light-tencent-chinese", "fastnlp.cn-char-100d", "fastnlp.cn-bi-100d",
                 "fastnlp.cn-tri-100d", "fastnlp.cn-tencent", "fastnlp.sgns-literature-word", "fasttext-cc-zh-300",
                 "pku-morpheme-cbow-50d"]
DATASETS = ["ca8.morphological", "ca8.semantic", "ca-translated", "wordsim-240", "wordsim-297", "stsb-zh.train",
            "stsb-zh.valid", "stsb-zh.test", "lcqmc.test", "atec.test", "atec.valid", "pawsx.test", "pawsx.dev",
            "cmrc2018.dev", "nli-zh", "bq"]
# sha256 of files whose origin ../shared/data/SOURCES.md records (taken unchanged from these sources)
SHARED = {"ca8.morphological": "CA8/morphological.txt", "wordsim-240": "wordsim/wordsim-240.txt",
          "stsb-zh.train": "STS-B-zh/STS-B.train.data", "stsb-zh.valid": "STS-B-zh/STS-B.valid.data",
          "stsb-zh.test": "STS-B-zh/STS-B.test.data", "lcqmc.test": "LCQMC/test.txt",
          "pku-morpheme-cbow-50d": "small-vectors/pku-morpheme-cbow.50d.txt"}


def merged(raw):
    return {**FAMILIES.get(raw.get("family"), {}), **raw}


def test_every_entry_has_the_required_fields():
    """Required fields are spelled out (null where unknown), directly or through the entry's family."""
    for raw in RAW["entries"]:
        e = merged(raw)
        for key in schema.REQUIRED_FIELDS:
            assert key in e, f"{raw.get('name')}: no {key}"
        assert e["kind"] in schema.KINDS and e["format"], e["name"]
        assert isinstance(e["urls"], list) and isinstance(e.get("manual", []), list), e["name"]
        for key in ("licence", "citation", "notes", "source", "language"):
            assert isinstance(e.get(key), str) and e[key].strip(), f"{e['name']}: empty {key}"
        assert e["size"] is None or (isinstance(e["size"], int) and e["size"] > 0), e["name"]


def test_names_are_unique_and_usable_as_folder_names():
    names = [e["name"] for e in RAW["entries"]]
    assert len(names) == len(set(names))
    assert len({n.lower() for n in names}) == len(names)  # case-insensitive lookup stays unambiguous
    for n in names:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", n) and ".." not in n, n
    assert catalog.names() == names  # the loader keeps them all, in order


def test_every_seed_table_row_is_present():
    for method, fmt, dim in (("sgns", "word2vec", 300), ("ppmi", "sparse", None)):  # sparse PPMI: no dense size
        for corpus in CWV_CORPORA:
            for ctx in CWV_CONTEXTS:
                e = catalog.get(f"{method}.{corpus}.{ctx}")
                assert (e.kind, e.format, e.corpus, e.dim) == ("static", fmt, corpus, dim)
    for side in ("target", "context"):
        for key in COOC:
            assert catalog.get(f"sgns.baidubaike.{side}.{key}").corpus == "baidubaike"
    for name in STATIC_OTHERS:
        assert catalog.get(name).kind == "static"
    for name, hf_id in TRANSFORMERS.items():
        e = catalog.get(name)
        assert e.kind == "transformer" and e.hf_id == hf_id and e.format == "sentence-transformers"
    for name in DATASETS:
        assert catalog.get(name).kind == "dataset"


def test_baidu_only_entries_say_how_to_get_them():
    e = catalog.get("sgns.zhihu.word")
    assert not e.downloadable and e.manual[0].url == "https://pan.baidu.com/s/1VGOs0RH7DXE5vRrtw6boQA"
    assert "--from" in e.notes
    pw = catalog.get("sgns.wiki.bigram").manual[0]
    assert pw.password == "jp7e" and pw.url.endswith("?pwd=jp7e")
    merge = catalog.get("sgns.merge.word")
    assert [m.site for m in merge.manual] == ["Baidu Netdisk", "Google Drive"]
    steps = "\n".join(catalog.manual_steps(e))
    assert "pan.baidu.com" in steps and "vecpipe fetch sgns.zhihu.word --from" in steps
    for raw in RAW["entries"]:
        e = catalog.get(raw["name"])
        if not e.downloadable and not e.builtin:
            assert e.manual or "not released" in e.notes, e.name
        if e.manual and not e.downloadable:
            assert f"vecpipe fetch {e.name} --from" in e.notes, e.name
    # cells the table marks NAN or lists without a link are there, and say so
    assert "not released" in catalog.get("sgns.sikuquanshu.char").notes
    assert "not released" in catalog.get("ppmi.merge.bigram-char").notes
    assert "not released" in catalog.get("sgns.baidubaike.target.radical").notes


def test_checksums_are_known_or_said_to_be_unknown():
    for raw in RAW["entries"]:
        e = catalog.get(raw["name"])
        if e.sha256:
            assert re.fullmatch(r"[0-9a-f]{64}", e.sha256)
            assert e.size is not None, f"{e.name}: a known file has a known size"
        elif not e.on_hub and e.released:
            assert "checksum" in e.notes.lower(), f"{e.name}: notes must say the checksum is unknown"
    assert len({catalog.get(n).sha256 for n in SHARED}) == len(SHARED)


@pytest.mark.parametrize("name,rel", sorted(SHARED.items()))
def test_known_checksums_match_the_shared_data(name, rel):
    path = DATA / rel
    if not path.is_file():
        pytest.skip(f"{path} not present")
    e = catalog.get(name)
    data = path.read_bytes()
    assert len(data) == e.size and hashlib.sha256(data).hexdigest() == e.sha256


def test_urls_are_https_unless_said_otherwise():
    for raw in RAW["entries"]:
        e = catalog.get(raw["name"])
        for url in e.urls:
            assert url.startswith(("https://", "http://")), (e.name, url)
            if url.startswith("http://"):
                assert "http" in e.notes.lower() and "--allow-http" in e.notes, (e.name, url)
        for m in e.manual:
            assert m.url.startswith("https://"), (e.name, m.url)
        if e.urls and e.urls[0].startswith("https://raw.githubusercontent.com/"):
            assert re.search(r"/[0-9a-f]{40}/", e.urls[0]), f"{e.name}: raw GitHub URLs are pinned to a commit"


def test_transformers_are_pinned_and_carry_their_query_instruction():
    for name in TRANSFORMERS:
        e = catalog.get(name)
        if e.revision is None:
            assert "no pinned revision" in e.notes.lower(), name
        else:
            assert re.fullmatch(r"[0-9a-f]{40}", e.revision), name
    for name in ("bge-small-zh", "bge-base-zh", "bge-large-zh", "bge-small-zh-v1.5", "bge-base-zh-v1.5", "bge-large-zh-v1.5"):
        assert catalog.get(name).query_instruction == BGE_QUERY
    for name in ("bge-large-zh-noinstruct", "m3e-base", "text2vec-base-chinese", "paraphrase-multilingual-MiniLM-L12-v2"):
        assert catalog.get(name).query_instruction is None
    assert catalog.get("bge-small-zh-v1.5").revision == "7999e1d3359715c523056ef9478215996d62a620"
    assert catalog.get("bge-small-zh").dim == 512 and catalog.get("bge-large-zh-v1.5").dim == 1024
    assert "non-commercial" in catalog.get("m3e-base").licence


def test_get_suggests_close_names():
    with pytest.raises(UsageError, match="did you mean: sgns.zhihu.word"):
        catalog.get("sgns.zhihu.wrod")
    with pytest.raises(UsageError, match="vecpipe fetch --list"):
        catalog.get("no-such-model-anywhere")
    assert catalog.get("BGE-Small-ZH").name == "bge-small-zh"  # case-insensitive


def test_list_filters():
    zhihu = [e.name for e in catalog.entries(corpus="zhihu")]
    assert len(zhihu) == 8 and all(".zhihu." in n for n in zhihu)
    assert {e.kind for e in catalog.entries(kind="dataset")} == {"dataset"}
    assert "paraphrase-multilingual-MiniLM-L12-v2" in [e.name for e in catalog.entries(language="multi")]
    assert len(catalog.entries()) == len(RAW["entries"])


def test_cache_root(monkeypatch, tmp_path):
    monkeypatch.setenv("VECPIPE_HOME", str(tmp_path / "h"))
    assert catalog.cache_root() == tmp_path / "h"
    monkeypatch.delenv("VECPIPE_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert catalog.cache_root() == tmp_path / "xdg" / "vecpipe"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert catalog.cache_root() == tmp_path / "home" / ".cache" / "vecpipe"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    assert catalog.hf_cache_dir() == tmp_path / "hf" / "hub"


def test_missing_message_is_one_line_with_the_command(monkeypatch, tmp_path):
    monkeypatch.setenv("VECPIPE_HOME", str(tmp_path))
    msg = catalog.missing_message("ca8.morphological")
    assert msg.endswith("run: vecpipe fetch ca8.morphological") and "\n" not in msg
    assert str(tmp_path) in msg
    manual = catalog.missing_message("sgns.zhihu.word")
    assert "vecpipe fetch sgns.zhihu.word --from FILE" in manual and "\n" not in manual
    assert catalog.resolve_local("ca8.morphological") is None
    with pytest.raises(UsageError):
        catalog.resolve_local("not-in-the-catalog")


def test_overlay_catalog_adds_and_overrides(monkeypatch, tmp_path):
    extra = tmp_path / "mine.json"
    extra.write_text(json.dumps({"entries": [
        {"name": "my-vectors", "kind": "static", "format": "word2vec", "urls": ["https://intranet.example/v.txt"],
         "size": None, "sha256": None, "licence": "internal", "citation": "-", "notes": "ours"},
        {"name": "bge-small-zh", "kind": "transformer", "format": "sentence-transformers", "hf_id": "BAAI/bge-small-zh",
         "revision": "1" * 40, "urls": [], "size": None, "sha256": None, "licence": "MIT", "citation": "-", "notes": "pinned here"},
    ]}), encoding="utf-8")
    monkeypatch.setenv("VECPIPE_CATALOG", str(extra))
    assert catalog.get("my-vectors").origin == str(extra)
    assert catalog.get("bge-small-zh").revision == "1" * 40
    assert catalog.get("sgns.zhihu.word").kind == "static"  # the built-in entries stay
    extra.write_text(json.dumps({"entries": [{"name": "../escape", "kind": "static", "format": "x"}]}))
    with pytest.raises(DataError, match="name must be"):
        catalog.get("my-vectors")
    extra.write_text(json.dumps({"entries": [{"name": "x", "kind": "vectors", "format": "x"}]}))
    with pytest.raises(DataError, match="kind must be one of"):
        catalog.entries()
    extra.write_text(json.dumps({"entries": [{"name": "x", "kind": "static", "format": "x", "member": "../../etc"}]}))
    with pytest.raises(DataError, match="relative path"):
        catalog.entries()
    monkeypatch.delenv("VECPIPE_CATALOG")
    assert catalog.find("my-vectors") is None


def test_catalog_ships_as_package_data():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "catalog.json" in config["tool"]["setuptools"]["package-data"]["vecpipe.core.fetch"]
    assert catalog.CATALOG_FILE.parent == Path(catalog.__file__).parent


def test_catalog_module_is_light():
    import subprocess

    code = ("import sys; from vecpipe.core.fetch import catalog; catalog.entries(); catalog.resolve_local('bge-small-zh');"
            "print([m for m in ('numpy', 'huggingface_hub', 'urllib.request', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
