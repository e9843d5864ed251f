"""Rebuild the embedded demo model `builtin:zh-classic` from public-domain text.

The four classical novels (西游记, 红楼梦, 三国演义, 水浒传; Ming and Qing
dynasty works) are segmented with jieba and trained with vecpipe's own
train-w2v (SGNS, fixed seed, one worker, so the run is reproducible); the
20,000 most frequent words are kept as float16. The result is a demo: small,
trained on 2M tokens of classical prose. Real work uses a fetched model.

    python scripts/build_zh_classic.py                         # writes core/builtin/zh-classic
    python scripts/build_zh_classic.py --out /tmp/zc --epochs 1  # a quick check of the vocabulary

Needs jieba (pip install 'vecpipe[jieba]').
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("VECPIPE_DATA", REPO.parent / "shared" / "data"))
NOVELS = ["xiyouji.txt", "hongloumeng.txt", "sanguo_yanyi.txt", "shuihu_zhuan.txt"]
TRAIN = ["--tokenize", "jieba", "--model", "sgns", "--dim", "100", "--window", "5", "--min-count", "5",
         "--sample", "1e-4", "--negative", "5", "--workers", "1", "--seed", "1"]
KEEP = 20000


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _without_abspaths(obj):
    """Machine-specific paths would make the shipped meta.json differ per machine."""
    if isinstance(obj, dict):
        return {k: _without_abspaths(v) for k, v in obj.items() if k not in ("abspath", "path", "seconds", "timings")}
    if isinstance(obj, list):
        return [_without_abspaths(v) for v in obj]
    return obj


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "core" / "builtin" / "zh-classic")
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    corpus = [DATA / "classical-novels-zh" / n for n in NOVELS]
    missing = [str(p) for p in corpus if not p.is_file()]
    if missing:
        sys.exit(f"missing corpus files: {', '.join(missing)} (set VECPIPE_DATA)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    vecpipe = [sys.executable, "-m", "vecpipe", "-q"]
    train_args = TRAIN + ["--epochs", str(args.epochs)]
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.vecdir"
        subprocess.run([*vecpipe, "train-w2v", *map(str, corpus), *train_args, "-o", str(full)], check=True)
        trained = json.loads((full / "meta.json").read_text(encoding="utf-8"))
        subprocess.run([*vecpipe, "convert", str(full), "--limit", str(KEEP), "--dtype", "float16", "-o", str(args.out)],
                       check=True)
    meta_path = args.out / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta.update({
        "name": "zh-classic",
        "demo": True,
        "description": "Demo word vectors (100d, float16, 20,000 most frequent words) trained by vecpipe train-w2v "
                       "on four public-domain classical Chinese novels. For trying the toolbox offline; real work "
                       "uses a fetched model (vecpipe fetch --list).",
        "how_made": {
            "script": "scripts/build_zh_classic.py",
            "train_command": ["vecpipe", "train-w2v", *[f"classical-novels-zh/{n}" for n in NOVELS], *train_args],
            "convert_command": ["vecpipe", "convert", "FULL", "--limit", str(KEEP), "--dtype", "float16"],
            "corpus": [{"file": f"classical-novels-zh/{p.name}", "sha256": sha256(p), "bytes": p.stat().st_size}
                       for p in corpus],
            "corpus_origin": "github.com/tennessine/corpus (commit c5ce96a); the works are Ming/Qing-era novels "
                             "in the public domain",
            "full_model": {"rows": trained.get("rows"), "made_by": trained.get("made_by"),
                           "training": _without_abspaths(trained.get("training"))},
        },
    })
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
