#!/usr/bin/env python3
"""Train, calibrate and export the cxr-viewer pneumonia model.

ResNet-50 trained from scratch (no pretrained weights) on the Kermany paediatric
chest X-ray training split, classes ["NORMAL", "PNEUMONIA"].

Typical use (from the repository root):

    # smoke test on CPU (< 1 min; writes only under .data/smoke/)
    .venv/bin/python weights/training/train.py --preset smoke

    # the intended GPU run (CUDA, AMP, channels_last), then export
    .venv/bin/python weights/training/train.py --preset gpu
    .venv/bin/python weights/training/train.py --preset gpu --export

    # the interim CPU run (time-boxed: finishes by --deadline, UTC)
    nohup nice -n 19 .venv/bin/python weights/training/train.py --preset cpu-interim \
        --deadline 09:00 > .data/train.log 2>&1 &

See weights/training/README.md for the recipe, split rule, threshold rule and
augmentation choices.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
WEIGHTS = REPO / "weights"
DEFAULT_DATA = Path("/work/shared/data/kermany")
DEFAULT_CACHE = REPO / ".data"
SAMPLES = Path("/work/shared/samples")
CLASSES = ["NORMAL", "PNEUMONIA"]
POS = 1  # index of PNEUMONIA

# Fixture images for the Rust parity references (Kermany train images, CC BY 4.0).
FIXTURES = [
    ("IM-0176-0001.jpeg", "NORMAL"),
    ("NORMAL2-IM-0912-0001.jpeg", "NORMAL"),
    ("person122_virus_229.jpeg", "PNEUMONIA"),
    ("person357_bacteria_1639.jpeg", "PNEUMONIA"),
]

PRESETS = {
    # The intended real run: 224 px, long cosine schedule with warm-up.
    "gpu": dict(size=224, epochs=90, batch_size=64, lr=1e-3, weight_decay=0.05,
                sched="cosine", warmup_epochs=5, dropout=0.3, label_smoothing=0.05,
                device="cuda", amp=True, threads=0, name="resnet50-pneumonia-s224"),
    # Interim CPU run: small input, one-cycle schedule with a high peak LR,
    # number of epochs re-planned every epoch so that it ends by --deadline.
    "cpu-interim": dict(size=128, epochs=12, batch_size=32, lr=2e-3, weight_decay=0.05,
                        sched="onecycle", warmup_epochs=1, dropout=0.3, label_smoothing=0.05,
                        device="cpu", amp=False, threads=2, name="resnet50-pneumonia-s128-interim"),
    # Smoke test: a handful of images, 1 epoch, export into .data/smoke/export.
    "smoke": dict(size=64, epochs=1, batch_size=8, lr=1e-3, weight_decay=0.05,
                  sched="onecycle", warmup_epochs=0, dropout=0.3, label_smoothing=0.05,
                  device="cpu", amp=False, threads=2, name="smoke"),
}


def log(*a):
    print(f"[{dt.datetime.utcnow().strftime('%H:%M:%S')}]", *a, flush=True)


# --------------------------------------------------------------------------- data

def patient_id(stem: str) -> str:
    """Grouping rule (one patient / study per key).

    PNEUMONIA:  person<N>_<bacteria|virus>_<k>[_<j>]  -> "person<N>"
    NORMAL:     IM-<NNNN>-<k>[-<j>]                   -> "IM-<NNNN>"
                NORMAL2-IM-<NNNN>-<k>[-<j>]           -> "NORMAL2-IM-<NNNN>"
    ("IM-0927" and "NORMAL2-IM-0927" are different numbering series and are
    kept as different patients.)
    """
    m = re.match(r"^(person\d+)_(?:bacteria|virus)_", stem)
    if m:
        return m.group(1)
    m = re.match(r"^((?:NORMAL\d+-)?IM-\d+)-\d+", stem)
    if m:
        return m.group(1)
    raise ValueError(f"unrecognised file name: {stem}")


def read_manifests(data_root: Path):
    rows = []
    for name in ("manifest.csv", "manifest-thumb224.csv"):
        with open(data_root / name, newline="") as f:
            rows += list(csv.DictReader(f))
    out = []
    for r in rows:
        stem = Path(r["file"]).stem
        out.append(dict(file=r["file"], label=r["label"], official=r["split"],
                        patient=patient_id(stem)))
    return out


def make_split(rows, val_frac=0.15, seed=20261122):
    """Patient-level split of the official train set, stratified by class.

    Patients are single-label here (checked), so stratification is done per
    class: patients of each class are sorted, shuffled with a fixed seed and
    the first round(val_frac * n) go to validation. The official 16-image val
    set keeps split "official_val" (report only)."""
    rng = random.Random(seed)
    by_class = {c: sorted({r["patient"] for r in rows if r["official"] == "train" and r["label"] == c})
                for c in CLASSES}
    labels_per_patient = {}
    for r in rows:
        labels_per_patient.setdefault(r["patient"], set()).add(r["label"])
    assert all(len(v) == 1 for v in labels_per_patient.values()), "patient with two labels"
    val_patients = set()
    for c in CLASSES:
        pts = list(by_class[c])
        rng.shuffle(pts)
        val_patients |= set(pts[: round(val_frac * len(pts))])
    split = []
    for r in sorted(rows, key=lambda r: r["file"]):
        if r["official"] == "val":
            s = "official_val"
        else:
            s = "val" if r["patient"] in val_patients else "train"
        split.append(dict(file=r["file"], label=r["label"], patient=r["patient"], split=s))
    return split


def write_split(split, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "label", "patient", "split"])
        w.writeheader()
        w.writerows(split)


def read_split(path: Path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load_gray(path, size: int) -> np.ndarray:
    """The engine's preprocessing up to the uint8 stage: Pillow convert("L"),
    squash the whole film to size x size with BILINEAR. Returns uint8 [S, S]."""
    with Image.open(path) as im:
        im = im.convert("L")
        im = im.resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8).copy()


def build_cache(files, data_root: Path, size: int, cache_dir: Path) -> np.ndarray:
    key = hashlib.sha256(("\n".join(files) + f"|{size}|{data_root}").encode()).hexdigest()[:12]
    path = cache_dir / "cache" / f"kermany_S{size}_{key}.npy"
    if path.exists():
        arr = np.load(path)
        if arr.shape == (len(files), size, size):
            log(f"cache hit {path} {arr.shape}")
            return arr
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    arr = np.empty((len(files), size, size), dtype=np.uint8)
    for i, f in enumerate(files):
        arr[i] = load_gray(data_root / f, size)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)
    log(f"cached {len(files)} images at S={size} in {time.time() - t0:.1f}s -> {path}")
    return arr


# --------------------------------------------------------------------------- model

def build_model(dropout: float) -> nn.Module:
    # zero_init_residual only changes the initial values (last BN gamma of each
    # block = 0), not the architecture or the state_dict names.
    m = torchvision.models.resnet50(weights=None, zero_init_residual=True)
    m.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(2048, 256), nn.ReLU(inplace=True),
                         nn.Dropout(dropout), nn.Linear(256, 2))
    return m


def to_input(gray01: torch.Tensor, mean: float, std: float, channels_last: bool) -> torch.Tensor:
    """[B,1,S,S] in [0,1] -> normalised [B,3,S,S] (gray replicated)."""
    x = ((gray01 - mean) / std).expand(-1, 3, -1, -1)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


# --------------------------------------------------------------------------- augmentation

def augment(x: torch.Tensor, gen: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Radiograph augmentation on [B,1,S,S] in [0,1]. No horizontal flip:
    laterality (heart on the patient's left, lung-zone scores) must be kept.
    `strength` scales every range (rotation, scale, shift, photometric, noise)
    around the identity; 1.0 is the recipe's base setting."""
    B, dev = x.shape[0], x.device
    k = strength

    def U(lo, hi):
        return (torch.rand(B, generator=gen) * (hi - lo) + lo).to(dev)

    def around_one(d):
        return U(1.0 - d * k, 1.0 + d * k)

    ang = U(-7.0 * k, 7.0 * k) * math.pi / 180.0
    scale = around_one(0.1)
    tx, ty = U(-0.08 * k, 0.08 * k), U(-0.08 * k, 0.08 * k)  # normalised coords: +-4k % of the width
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # brightness / contrast / gamma jitter
    c = around_one(0.15).view(B, 1, 1, 1)
    b = U(-0.08 * k, 0.08 * k).view(B, 1, 1, 1)
    g = around_one(0.15).view(B, 1, 1, 1)
    m = x.mean(dim=(2, 3), keepdim=True)
    x = ((x - m) * c + m + b).clamp(0, 1).pow(g)
    # mild Gaussian noise
    sigma = U(0.0, 0.02 * k).view(B, 1, 1, 1)
    noise = torch.randn(x.shape, generator=gen) if dev.type == "cpu" else torch.randn(x.shape, device=dev)
    return (x + sigma * noise).clamp(0, 1)


# --------------------------------------------------------------------------- metrics

def auc_score(y: np.ndarray, s: np.ndarray) -> float:
    y = np.asarray(y).astype(bool)
    npos, nneg = y.sum(), (~y).sum()
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    ss = np.asarray(s)[order]
    i = 0
    while i < len(ss):  # average ranks for ties
        j = i
        while j + 1 < len(ss) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return float((ranks[y].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def ece_score(y: np.ndarray, p_pos: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE with `bins` equal-width confidence bins (binary case:
    confidence = max(p, 1-p), prediction = argmax)."""
    y = np.asarray(y).astype(int)
    p_pos = np.asarray(p_pos, dtype=np.float64)
    pred = (p_pos >= 0.5).astype(int)
    conf = np.where(pred == 1, p_pos, 1 - p_pos)
    correct = (pred == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        msk = (conf > lo) & (conf <= hi)
        if msk.any():
            ece += msk.mean() * abs(correct[msk].mean() - conf[msk].mean())
    return float(ece)


def binary_metrics(y, p_pos, thr=0.5):
    y = np.asarray(y).astype(int)
    pred = (np.asarray(p_pos) >= thr).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum()); tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum()); fn = int(((pred == 0) & (y == 1)).sum())
    return dict(accuracy=(tp + tn) / max(1, len(y)), sensitivity=tp / max(1, tp + fn),
                specificity=tn / max(1, tn + fp), tp=tp, tn=tn, fp=fp, fn=fn)


def softmax_np(z, T=1.0):
    z = np.asarray(z, dtype=np.float64) / T
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def nll(z, y, T):
    p = softmax_np(z, T)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


def fit_temperature(z, y):
    """T minimising the NLL of softmax(z / T) (golden-section search on log T)."""
    lo, hi = math.log(0.05), math.log(20.0)
    gr = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - gr * (b - a), a + gr * (b - a)
    for _ in range(100):
        if nll(z, y, math.exp(c)) < nll(z, y, math.exp(d)):
            b = d
        else:
            a = c
        c, d = b - gr * (b - a), a + gr * (b - a)
    return math.exp((a + b) / 2)


def pick_threshold(y, p, min_sens=0.95):
    """Highest threshold t with validation sensitivity >= min_sens for the rule
    "PNEUMONIA if p >= t". t is placed half-way between the k-th highest
    positive score and the next lower score of any validation image, so that
    ">=" and ">" give the same validation result."""
    y = np.asarray(y).astype(int); p = np.asarray(p, dtype=np.float64)
    pos = np.sort(p[y == 1])[::-1]
    k = math.ceil(min_sens * len(pos))
    v = pos[k - 1]
    lower = p[p < v]
    return float((v + lower.max()) / 2) if len(lower) else float(v)


# --------------------------------------------------------------------------- evaluation

@torch.no_grad()
def predict_logits(model, imgs_u8: torch.Tensor, mean, std, device, channels_last,
                   batch=64, amp_dtype=None):
    model.eval()
    out = []
    for i in range(0, len(imgs_u8), batch):
        x = imgs_u8[i:i + batch].to(device).float().div_(255.0).unsqueeze(1)
        x = to_input(x, mean, std, channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            out.append(model(x).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 2), np.float32)


@torch.no_grad()
def backbone_features(model, imgs_u8, mean, std, device, channels_last, batch=64):
    """Pooled 2048-d features (everything before model.fc), eval mode."""
    model.eval()
    backbone = nn.Sequential(*list(model.children())[:-1])
    feats = []
    for i in range(0, len(imgs_u8), batch):
        x = imgs_u8[i:i + batch].to(device).float().div_(255.0).unsqueeze(1)
        feats.append(torch.flatten(backbone(to_input(x, mean, std, channels_last)), 1).float())
    return torch.cat(feats) if feats else torch.zeros(0, 2048)


@torch.no_grad()
def mc_dropout_probs(head, f, T=1.0, samples=20, seed=0):
    """MC dropout on pooled features f: backbone deterministic (eval-mode BN),
    head dropout active; mean P(PNEUMONIA) over `samples` passes and its std."""
    g = torch.Generator(device=f.device).manual_seed(seed)
    ps = []
    for _ in range(samples):
        h = f
        for layer in head:
            if isinstance(layer, nn.Dropout):
                keep = (torch.rand(h.shape, generator=g, device=h.device) >= layer.p).float()
                h = h * keep / (1 - layer.p)
            else:
                h = layer(h)
        ps.append(torch.softmax(h / T, 1)[:, POS].cpu())
    ps = torch.stack(ps)
    return ps.mean(0).numpy(), ps.std(0).numpy()


def evaluate(model, imgs, labels, mean, std, device, channels_last, amp_dtype=None):
    z = predict_logits(model, imgs, mean, std, device, channels_last, amp_dtype=amp_dtype)
    if len(z) == 0:
        return {}
    y = np.asarray(labels)
    p = softmax_np(z)[:, POS]
    m = binary_metrics(y, p)
    return dict(loss=nll(z, y, 1.0), acc=m["accuracy"], sens=m["sensitivity"], spec=m["specificity"],
                auc=auc_score(y, p), ece=ece_score(y, p))


# --------------------------------------------------------------------------- schedule

def lr_factor(progress: float, warmup_frac: float, final: float, start: float):
    """Linear warm-up from start*lr to lr over warmup_frac of the run, then
    cosine annealing to final*lr (progress in [0, 1])."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup_frac > 0 and progress < warmup_frac:
        return start + (1 - start) * progress / warmup_frac
    q = (progress - warmup_frac) / max(1e-9, 1 - warmup_frac)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * q))


def param_groups(model, wd):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [dict(params=decay, weight_decay=wd), dict(params=no_decay, weight_decay=0.0)]


# --------------------------------------------------------------------------- main parts

def epochs_behind(ck) -> int:
    """Epochs of training behind a checkpoint (best.pt or last.pt), counting those of the
    checkpoint its run was warm-started from."""
    return int(ck["meta"].get("init_epochs", 0)) + int(ck["epoch"])


def parse_deadline(s):
    if not s:
        return None
    now = dt.datetime.now(dt.timezone.utc)
    hh, mm = map(int, s.split(":"))
    d = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if d < now:
        d += dt.timedelta(days=1)
    return d.timestamp()


def setup(args):
    data_root = Path(args.data_root)
    cache_dir = Path(args.cache_dir)
    split_path = Path(args.split_csv)
    if split_path.exists() and not args.new_split:
        split = read_split(split_path)
        log(f"using split {split_path}")
    else:
        split = make_split(read_manifests(data_root), args.val_frac, args.split_seed)
        write_split(split, split_path)
        log(f"wrote split {split_path}")
    if args.preset == "smoke":  # a handful of images per class and split
        rng = random.Random(0)
        keep = []
        for s, n in (("train", 12), ("val", 6), ("official_val", 4)):
            for c in CLASSES:
                cand = [r for r in split if r["split"] == s and r["label"] == c]
                keep += rng.sample(cand, min(n, len(cand)))
        split = sorted(keep, key=lambda r: r["file"])
    files = [r["file"] for r in split]
    arr = build_cache(files, data_root, args.size, cache_dir)
    idx = {s: np.array([i for i, r in enumerate(split) if r["split"] == s], dtype=np.int64)
           for s in ("train", "val", "official_val")}
    labels = np.array([CLASSES.index(r["label"]) for r in split], dtype=np.int64)
    tr = arr[idx["train"]].astype(np.float64) / 255.0
    mean, std = float(tr.mean()), float(tr.std())
    del tr
    for s in idx:
        n = len(idx[s]); npos = int(labels[idx[s]].sum()) if n else 0
        pts = len({split[i]["patient"] for i in idx[s]})
        log(f"{s:12s}: {n:5d} images ({n - npos} NORMAL / {npos} PNEUMONIA), {pts} patients")
    log(f"normalisation (training part, S={args.size}): mean={mean:.6f} std={std:.6f}")
    return split, arr, idx, labels, mean, std


def train(args):
    device = torch.device(args.device if (args.device != "cuda" or torch.cuda.is_available()) else "cpu")
    if args.device == "cuda" and device.type != "cuda":
        log("WARNING: CUDA not available, falling back to CPU")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed); np.random.seed(args.seed); random.seed(args.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    split, arr, idx, labels, mean, std = setup(args)
    run_dir = Path(args.run_dir); run_dir.mkdir(parents=True, exist_ok=True)
    channels_last = True
    amp_dtype = None
    if args.amp and device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif args.cpu_bf16 and device.type == "cpu":
        amp_dtype = torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    all_imgs = torch.from_numpy(arr)
    if device.type == "cuda":
        all_imgs = all_imgs.to(device)
    tr_idx = torch.from_numpy(idx["train"])
    all_y = torch.from_numpy(labels)
    val_imgs, val_y = all_imgs[idx["val"]], labels[idx["val"]]
    ov_imgs, ov_y = all_imgs[idx["official_val"]], labels[idx["official_val"]]

    model = build_model(args.dropout).to(device).to(memory_format=torch.channels_last)
    init_epochs = 0
    if args.init_from:  # warm start: weights only; new optimizer, new LR cycle
        src = torch.load(args.init_from, map_location=device, weights_only=False)
        model.load_state_dict(src["model"])
        init_epochs = epochs_behind(src)
        log(f"initialised from {args.init_from} ({init_epochs} epochs of earlier training)")
    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.999))
    counts = np.bincount(labels[idx["train"]], minlength=2)
    cw = torch.tensor(len(idx["train"]) / (2.0 * counts), dtype=torch.float32, device=device)
    log(f"class weights {cw.tolist()} (train counts {counts.tolist()})")
    crit = nn.CrossEntropyLoss(weight=cw, label_smoothing=args.label_smoothing)

    steps_per_epoch = len(tr_idx) // args.batch_size
    planned_epochs = args.epochs
    deadline = parse_deadline(args.deadline)
    if args.sched == "onecycle":  # one-cycle: 20 % warm-up from lr/25, anneal to lr/1e4
        warmup_frac, lr_start, lr_final = args.pct_start, 1 / 25, 1e-4
    else:  # warm-up epochs + cosine to lr/1e3
        warmup_frac, lr_start, lr_final = args.warmup_epochs / max(1, planned_epochs), 0.04, 1e-3
    start_epoch, step, best_auc, hist = 0, 0, -1.0, []
    progress = 0.0
    last = run_dir / "last.pt"
    if args.resume and last.exists():
        ck = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"]); opt.load_state_dict(ck["opt"])
        start_epoch, step, best_auc, hist = ck["epoch"], ck["step"], ck["best_auc"], ck["hist"]
        planned_epochs, progress = ck["planned_epochs"], ck["progress"]
        log(f"resumed from {last} at epoch {start_epoch}")
    gen = torch.Generator().manual_seed(args.seed)
    for _ in range(start_epoch):
        torch.randperm(len(tr_idx), generator=gen)

    meta = dict(mean=mean, std=std, size=args.size, dropout=args.dropout, name=args.name,
                device=device.type, preset=args.preset, args=vars(args), init_epochs=init_epochs,
                init_from=args.init_from)
    epoch = start_epoch
    while epoch < planned_epochs:
        t_ep = time.time()
        model.train()
        perm = tr_idx[torch.randperm(len(tr_idx), generator=gen)]
        tot_loss, tot_ok, seen = 0.0, 0, 0
        # progress of the LR schedule runs from the value reached so far to 1 at
        # the end of the last planned epoch (re-planned each epoch under --deadline)
        p0, p_span = progress, (1.0 - progress) / max(1, planned_epochs - epoch)
        for b in range(steps_per_epoch):
            progress = p0 + p_span * (b + 1) / steps_per_epoch
            lr = args.lr * lr_factor(progress - p_span / steps_per_epoch, warmup_frac, lr_final, lr_start)
            for gi in opt.param_groups:
                gi["lr"] = lr
            bi = perm[b * args.batch_size:(b + 1) * args.batch_size]
            x = all_imgs[bi.to(all_imgs.device)].float().div_(255.0).unsqueeze(1)
            x = augment(x, gen, args.aug_strength) if not args.no_augment else x
            x = to_input(x, mean, std, channels_last)
            y = all_y[bi].to(device)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                out = model(x)
                loss = crit(out.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            step += 1
            tot_loss += loss.item() * len(y); tot_ok += (out.argmax(1) == y).sum().item(); seen += len(y)
            if (b + 1) % args.log_every == 0:
                el = time.time() - t_ep
                log(f"ep {epoch + 1}/{planned_epochs} step {b + 1}/{steps_per_epoch} loss {tot_loss / seen:.4f} "
                    f"acc {tot_ok / seen:.3f} lr {lr:.2e} {el / seen:.4f} s/img")
        t_train = time.time() - t_ep
        vm = evaluate(model, val_imgs, val_y, mean, std, device, channels_last, amp_dtype)
        om = evaluate(model, ov_imgs, ov_y, mean, std, device, channels_last, amp_dtype)
        epoch += 1
        dur = time.time() - t_ep
        row = dict(epoch=epoch, planned_epochs=planned_epochs, lr_last=lr, train_loss=tot_loss / max(1, seen),
                   train_acc=tot_ok / max(1, seen), val_loss=vm.get("loss"), val_acc=vm.get("acc"),
                   val_sens=vm.get("sens"), val_spec=vm.get("spec"), val_auc=vm.get("auc"),
                   val_ece=vm.get("ece"), official_val_acc=om.get("acc"), official_val_auc=om.get("auc"),
                   train_s_per_img=t_train / max(1, seen), epoch_sec=dur,
                   time_utc=dt.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
        hist.append(row)
        log("EPOCH " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        is_best = vm.get("auc", -1) > best_auc
        if is_best:
            best_auc = vm["auc"]
            torch.save(dict(model=model.state_dict(), meta=meta, epoch=epoch, metrics=row), run_dir / "best.pt.tmp")
            os.replace(run_dir / "best.pt.tmp", run_dir / "best.pt")
            log(f"new best val AUC {best_auc:.4f} at epoch {epoch}")
        # re-plan the number of epochs so the run ends before the deadline
        if deadline is not None and epoch < planned_epochs:
            recent = [h["epoch_sec"] for h in hist[-2:]]
            est = max(recent) * 1.05 + 30
            remaining = deadline - time.time()
            new_plan = min(args.max_epochs or args.epochs, epoch + int(remaining // est))
            if new_plan != planned_epochs:
                log(f"re-plan: {planned_epochs} -> {new_plan} epochs (epoch ~{est:.0f}s, {remaining:.0f}s left)")
                planned_epochs = max(epoch, new_plan)
        ck = dict(model=model.state_dict(), opt=opt.state_dict(), epoch=epoch, step=step, best_auc=best_auc,
                  hist=hist, planned_epochs=planned_epochs, progress=progress, meta=meta)
        torch.save(ck, run_dir / "last.pt.tmp")
        os.replace(run_dir / "last.pt.tmp", last)
        write_log_csv(hist, run_dir / "train_log.csv")
    log(f"training finished: {epoch} epochs, best val AUC {best_auc:.4f}")
    return run_dir


def write_log_csv(hist, path):
    if not hist:
        return
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(hist[0].keys()))
        w.writeheader()
        for h in hist:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in h.items()})


# --------------------------------------------------------------------------- export

def sha256_file(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export(args):
    from safetensors.torch import save_file

    torch.set_num_threads(args.threads or 2)
    run_dir = Path(args.run_dir)
    ck_path = run_dir / ("last.pt" if args.export_last else "best.pt")
    ck = torch.load(ck_path, map_location="cpu", weights_only=False)
    meta = ck["meta"]
    S, mean, std, p_drop, name = meta["size"], meta["mean"], meta["std"], meta["dropout"], meta["name"]
    log(f"exporting {ck_path} (epoch {ck['epoch']}) as {name}, S={S}")
    sd = {k: v for k, v in ck["model"].items() if not k.endswith("num_batches_tracked")}
    f16 = {k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}
    # float16-rounded weights cast back to float32: what an f32 engine computes with
    sd_r = {k: v.to(torch.float32) for k, v in f16.items()}
    model = build_model(p_drop)
    missing, unexpected = model.load_state_dict(sd_r, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    model.eval()

    args.size = S
    split, arr, idx, labels, mean2, std2 = setup(args)
    assert abs(mean2 - mean) < 1e-9 and abs(std2 - std) < 1e-9, "split/cache changed since training"
    dev = torch.device("cpu")
    imgs = torch.from_numpy(arr)
    vfeat = backbone_features(model, imgs[idx["val"]], mean, std, dev, False)
    with torch.no_grad():
        vz = model.fc(vfeat).numpy()
    vy = labels[idx["val"]]
    # f32 (unrounded) vs f16-rounded logits, for the record
    m32 = build_model(p_drop); m32.load_state_dict(ck["model"]); m32.eval()
    vz32 = predict_logits(m32, imgs[idx["val"]][:64], mean, std, dev, False)
    f16_dev = float(np.abs(vz32 - vz[:64]).max())
    T = fit_temperature(vz, vy)
    p_raw, p_cal = softmax_np(vz)[:, POS], softmax_np(vz, T)[:, POS]
    thr = pick_threshold(vy, p_cal, args.min_sensitivity)
    res = dict(n=len(vy), n_normal=int((vy == 0).sum()), n_pneumonia=int((vy == 1).sum()),
               auc=auc_score(vy, p_cal), nll_before=nll(vz, vy, 1.0), nll_after=nll(vz, vy, T),
               ece_before=ece_score(vy, p_raw), ece_after=ece_score(vy, p_cal), temperature=T,
               threshold=thr, at_threshold=binary_metrics(vy, p_cal, thr),
               at_0_5_calibrated=binary_metrics(vy, p_cal, 0.5),
               max_abs_logit_diff_f32_vs_f16=f16_dev)
    mc_mean, mc_std = mc_dropout_probs(model.fc, vfeat, T=T)
    res["mc_dropout"] = dict(samples=20, auc=auc_score(vy, mc_mean), ece=ece_score(vy, mc_mean),
                             at_threshold=binary_metrics(vy, mc_mean, thr),
                             mean_std=float(mc_std.mean()))
    oz = predict_logits(model, imgs[idx["official_val"]], mean, std, dev, False)
    oy = labels[idx["official_val"]]
    if len(oy):
        op = softmax_np(oz, T)[:, POS]
        res["official_val"] = dict(n=len(oy), auc=auc_score(oy, op), ece=ece_score(oy, op),
                                   at_threshold=binary_metrics(oy, op, thr),
                                   at_0_5=binary_metrics(oy, op, 0.5))
    log("calibration: " + json.dumps(res, indent=1))

    out = Path(args.export_dir)
    out.mkdir(parents=True, exist_ok=True)
    wname = f"{name}.safetensors"
    save_file(f16, str(out / wname), metadata={"format": "pt", "classes": "NORMAL,PNEUMONIA"})
    os.chmod(out / wname, 0o644)
    hist = ck.get("hist") or torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)["hist"]
    m_best = ck["metrics"] if "metrics" in ck else hist[-1]
    trained_epochs = int(torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)["epoch"]) \
        if (run_dir / "last.pt").exists() else int(ck["epoch"])
    model_json = {
        "name": name, "weights": wname,
        "architecture": {"family": "resnet-bottleneck", "layers": [3, 4, 6, 3], "width": 64, "head_hidden": 256},
        "classes": CLASSES, "positive_class": "PNEUMONIA",
        "input": {"width": S, "height": S, "channels": 3, "resize": "squash",
                  "mean": [round(mean, 6)] * 3, "std": [round(std, 6)] * 3},
        "dropout": p_drop, "threshold": round(thr, 6), "temperature": round(T, 6),
        "training": {"interim": meta["preset"] != "gpu",
                     "epochs": epochs_behind(ck), "input_size": S,
                     "device": meta["device"], "val_auc": round(res["auc"], 6),
                     "val_accuracy": round(res["at_threshold"]["accuracy"], 6),
                     "date": dt.datetime.utcnow().strftime("%Y-%m-%d")},
    }
    # the engine normalises with the rounded mean/std written to model.json
    mean_j, std_j = model_json["input"]["mean"][0], model_json["input"]["std"][0]
    (out / "model.json").write_text(json.dumps(model_json, indent=2) + "\n")

    # parity references
    ref = out / "reference"
    ref.mkdir(parents=True, exist_ok=True)
    refs, labels_of = {}, {}
    for fname, label in FIXTURES:
        # the committed copy travels with the repo; ../shared/samples does not (e.g. to a GPU machine)
        src = WEIGHTS / "reference" / fname if (WEIGHTS / "reference" / fname).exists() else SAMPLES / fname
        dst = ref / fname
        if not dst.exists():
            shutil.copyfile(src, dst)
        gray = load_gray(dst, S).astype(np.float32) / np.float32(255.0)
        stem = Path(fname).stem
        np.save(ref / f"{stem}_gray.npy", gray)
        x = torch.from_numpy(gray)[None, None]
        with torch.no_grad():
            z = model(to_input(x, mean_j, std_j, False)).double().numpy()[0]
        refs[stem] = {"logits": [float(v) for v in z],
                      "prob_pneumonia_calibrated": float(softmax_np(z[None], float(model_json["temperature"]))[0, POS])}
        labels_of[stem] = label
    (ref / "reference_logits.json").write_text(json.dumps(refs, indent=2) + "\n")
    lines = [f"| `{st}` | {labels_of[st]} | {r['logits'][0]:.6f} | {r['logits'][1]:.6f} | {r['prob_pneumonia_calibrated']:.6f} |"
             for st, r in refs.items()]
    (ref / "README.md").write_text(REF_README.format(name=name, wname=wname, S=S, mean=mean_j, std=std_j,
                                                     T=model_json["temperature"], rows="\n".join(lines)))
    if not (ref / "ATTRIBUTION.md").exists():
        (ref / "ATTRIBUTION.md").write_text(ATTRIBUTION)

    sha = sha256_file(out / wname)
    summary = dict(name=name, weights=wname, sha256=sha, checkpoint=str(ck_path), best_epoch=ck["epoch"],
                   trained_epochs=trained_epochs, size=S, mean=mean, std=std, validation=res,
                   split_sizes={s: int(len(v)) for s, v in idx.items()})
    (run_dir / "export_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.preset != "smoke":
        write_log_csv(hist, HERE / "train_log.csv")
        (HERE / "validation_metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"exported {out / wname} sha256={sha}")
    log(json.dumps(refs, indent=1))
    log("reference labels: " + json.dumps(labels_of))
    return summary


REF_README = """# Parity references for `{wname}`

Written by `weights/training/train.py --export`; checked by
`weights/training/check_export.py`.

* `<stem>.jpeg` — the fixture image (Kermany train image, CC BY 4.0, see `ATTRIBUTION.md`).
* `<stem>_gray.npy` — float32 [{S}, {S}]: Pillow `convert("L")`, `resize(({S}, {S}), BILINEAR)`
  (squash), `/255`. Not yet normalised.
* `reference_logits.json` — `{{stem: {{logits: [NORMAL, PNEUMONIA], prob_pneumonia_calibrated}}}}`:
  the model in eval mode on CPU in float32, with the float16 weights of `{wname}` cast back to
  float32, input `(gray - {mean}) / {std}` replicated to 3 channels;
  `prob_pneumonia_calibrated = softmax(logits / {T})[1]`. A float32 engine loading the f16 file
  should reproduce the logits within 1e-4.

| stem | label | logit NORMAL | logit PNEUMONIA | P(PNEUMONIA) calibrated |
|------|-------|-------------:|----------------:|------------------------:|
{rows}
"""


ATTRIBUTION = """# Attribution for the fixture images in this folder

`IM-0176-0001.jpeg`, `NORMAL2-IM-0912-0001.jpeg` (NORMAL) and
`person122_virus_229.jpeg`, `person357_bacteria_1639.jpeg` (PNEUMONIA) are
unmodified copies (byte-identical; SHA-256 as in the data manifest
`orig_sha256`) of original images from the official training split of

Kermany D, Zhang K, Goldbaum M. *Labeled Optical Coherence Tomography (OCT) and
Chest X-Ray Images for Classification.* Mendeley Data, 2018, v2.
doi:10.17632/rscbjbr9sj.2

licensed under **CC BY 4.0** (https://creativecommons.org/licenses/by/4.0/).
Related paper: Kermany DS, Goldbaum M, Cai W, et al. *Identifying Medical
Diagnoses and Treatable Diseases by Image-Based Deep Learning.* Cell
172(5):1122–1131, 2018.

Changes: none to the JPEG files. The `*_gray.npy` arrays are derived from them
(converted to grayscale and resized); `reference_logits.json` holds model
outputs for them.

In the model's patient-level split (`weights/training/split.csv`)
`IM-0176-0001` is in the validation part; the other three are in the training
part (so the model has seen them).
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu-interim")
    ap.add_argument("--size", type=int); ap.add_argument("--epochs", type=int)
    ap.add_argument("--batch-size", type=int); ap.add_argument("--lr", type=float)
    ap.add_argument("--weight-decay", type=float); ap.add_argument("--dropout", type=float)
    ap.add_argument("--label-smoothing", type=float); ap.add_argument("--warmup-epochs", type=float)
    ap.add_argument("--sched", choices=["onecycle", "cosine"]); ap.add_argument("--device")
    ap.add_argument("--pct-start", type=float, default=0.2, help="warm-up fraction of the one-cycle schedule")
    ap.add_argument("--threads", type=int); ap.add_argument("--name")
    ap.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--cpu-bf16", action="store_true", help="bf16 autocast on CPU (only if faster)")
    ap.add_argument("--max-epochs", type=int, help="upper bound when re-planning under --deadline")
    ap.add_argument("--deadline", help="HH:MM UTC; re-plan epochs so training ends before it")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split-seed", type=int, default=20261122)
    ap.add_argument("--val-frac", type=float, default=0.15)
    ap.add_argument("--new-split", action="store_true", help="recompute split.csv even if it exists")
    ap.add_argument("--data-root", default=str(DEFAULT_DATA))
    ap.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    ap.add_argument("--split-csv"); ap.add_argument("--run-dir"); ap.add_argument("--export-dir")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init-from", help="warm start: model weights of this checkpoint, new optimizer and LR cycle")
    ap.add_argument("--aug-strength", type=float, default=1.0, help="scale of all augmentation ranges")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--export", action="store_true", help="only export (calibrate, write weights/)")
    ap.add_argument("--export-last", action="store_true", help="export last.pt instead of best.pt")
    ap.add_argument("--min-sensitivity", type=float, default=0.95)
    args = ap.parse_args(argv)
    for k, v in PRESETS[args.preset].items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    smoke = args.preset == "smoke"
    if args.split_csv is None:
        args.split_csv = str((DEFAULT_CACHE / "smoke" / "split.csv") if smoke else HERE / "split.csv")
    if args.run_dir is None:
        args.run_dir = str(DEFAULT_CACHE / ("smoke" if smoke else "runs") / args.name)
    if args.export_dir is None:
        args.export_dir = str(DEFAULT_CACHE / "smoke" / "export") if smoke else str(WEIGHTS)
    log(f"torch {torch.__version__} torchvision {torchvision.__version__} args {vars(args)}")
    if args.export:
        export(args)
        return
    train(args)
    if smoke:
        export(args)


if __name__ == "__main__":
    main()
