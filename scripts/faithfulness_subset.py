#!/usr/bin/env python3
"""A seeded, class-balanced subset of the patient-level validation split, as the folder layout
`cxr-viewer eval` reads (OUT/NORMAL, OUT/PNEUMONIA, symlinks).

    python3 scripts/faithfulness_subset.py OUT [--per-class 12] [--seed 0]

Used for `cxr-viewer eval --faithfulness`, which runs Integrated Gradients and the deletion
curves on every image (about a minute per image on a 2-core CPU), so the whole 794-image split
is out of reach there. Standard library only.
"""
import argparse
import csv
import os
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--per-class", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-root", default="/work/shared/data/kermany")
    ap.add_argument("--split-csv", default=str(HERE.parent / "weights/training/split.csv"))
    a = ap.parse_args()
    by_label = {}
    with open(a.split_csv, newline="") as f:
        for r in csv.DictReader(f):
            if r["split"] == "val":
                by_label.setdefault(r["label"], []).append(r["file"])
    rng = random.Random(a.seed)
    for label in sorted(by_label):
        files = sorted(by_label[label])
        chosen = sorted(rng.sample(files, min(a.per_class, len(files))))
        d = Path(a.out) / label
        d.mkdir(parents=True, exist_ok=True)
        for rel in chosen:
            src = Path(a.data_root) / rel
            dst = d / Path(rel).name
            if not dst.exists():
                os.symlink(src.resolve(), dst)
        print(f"{label}: {len(chosen)} of {len(files)}")


if __name__ == "__main__":
    main()
