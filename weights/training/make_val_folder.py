#!/usr/bin/env python3
"""Materialise the patient-level validation split as a folder layout.

    python3 weights/training/make_val_folder.py OUT [--split val|official_val|train]
                                                    [--data-root DIR] [--copy]

creates OUT/NORMAL/ and OUT/PNEUMONIA/ with one symlink (or copy, --copy) per
image of the chosen split in weights/training/split.csv (default: "val", the
794-image patient-level validation split used for model selection and
calibration). Standard library only.
"""
import argparse
import csv
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--split", default="val", choices=["val", "official_val", "train"])
    ap.add_argument("--data-root", default="/work/shared/data/kermany")
    ap.add_argument("--split-csv", default=str(HERE / "split.csv"))
    ap.add_argument("--copy", action="store_true", help="copy files instead of symlinking")
    a = ap.parse_args()
    root, out = Path(a.data_root).resolve(), Path(a.out)
    n = {"NORMAL": 0, "PNEUMONIA": 0}
    with open(a.split_csv, newline="") as f:
        for r in csv.DictReader(f):
            if r["split"] != a.split:
                continue
            src = root / r["file"]
            if not src.exists():
                sys.exit(f"missing {src}")
            d = out / r["label"]
            d.mkdir(parents=True, exist_ok=True)
            # prefix thumbnails so the file name shows the image quality
            name = ("thumb224__" if r["file"].startswith("train-thumb224/") else "") + src.name
            dst = d / name
            if dst.exists() or dst.is_symlink():
                dst.unlink()
            if a.copy:
                shutil.copyfile(src, dst)
            else:
                os.symlink(src, dst)
            n[r["label"]] += 1
    print(f"{a.split}: {n['NORMAL']} NORMAL + {n['PNEUMONIA']} PNEUMONIA -> {out}")


if __name__ == "__main__":
    main()
