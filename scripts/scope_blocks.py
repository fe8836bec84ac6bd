"""Scope-guard variant: pooled mean and deviation of every one of ResNet-50's 16 bottleneck blocks'
outputs (not only the four stage ends), through the PyTorch copy of the model, each block scored
with the shipped detector's PPCA distance; per block and averaged (analysis only; nothing here is
shipped; docs/scope-guard-log.md, eighteenth session).

    python scripts/scope_blocks.py ../shared/data/kermany weights/training/split.csv ../shared/ood

(about 10 minutes on 2 cores; the JPEG files of the out-of-scope folder only).
"""
import sys, csv, os
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_python as b
torch.set_num_threads(2)
model, cfg = b.build(Path('weights/model.json'))
blocks = [blk for layer in [model.layer1, model.layer2, model.layer3, model.layer4] for blk in layer]
acts = {}
for i, blk in enumerate(blocks):
    blk.register_forward_hook(lambda m, inp, out, i=i: acts.__setitem__(i, out))
root, split_csv, ood = sys.argv[1], sys.argv[2], sys.argv[3]
files = []
for row in csv.DictReader(open(split_csv)):
    files.append((os.path.join(root, row['file']), row['split']))
for p in sorted(Path(ood).glob('*/*.jpg')):
    files.append((str(p), 'ood:' + p.parent.name))
names, splits, feats = [], [], []
B = 16
for s in range(0, len(files), B):
    chunk = files[s:s + B]
    x = torch.cat([b.preprocess(Path(f), cfg) for f, _ in chunk])
    with torch.no_grad():
        model(x)
    row = []
    for i in range(len(blocks)):
        a = acts[i]
        row.append(torch.cat([a.mean((2, 3)), a.std((2, 3))], 1))
    feats.append(torch.cat(row, 1).numpy().astype(np.float32))
    names += [f for f, _ in chunk]; splits += [sp for _, sp in chunk]
    if s % 800 == 0: print(s, flush=True)
F, splits = np.concatenate(feats), np.array(splits)
import scope_variants  # noqa: E402
from scope_variants import fit, dist  # noqa: E402
chans = [256]*3 + [512]*4 + [1024]*6 + [2048]*3
offs = np.cumsum([0] + [2*c for c in chans])
tr = np.where(splits == 'train')[0]; va = np.where(splits == 'val')[0]
cats = {c: np.where(splits == 'ood:' + c)[0] for c in sorted({s[4:] for s in splits if s.startswith('ood:')})}
scores = []
def report(name, score):
    scope_variants.report(name, score, va, cats, width=22)
for i in range(16):
    X = F[:, offs[i]:offs[i+1]]
    st = fit(X[tr], 32)
    s = dist(st, X); scores.append(s)
    report(f'block {i}', s)
S = np.array(scores)
report('mean all 16', S.mean(0))
report('mean stage ends', S[[2, 6, 12, 15]].mean(0))
zs = np.log(S); zs = (zs - zs[:, tr].mean(1, keepdims=True)) / zs[:, tr].std(1, keepdims=True)
report('mean z(log) all 16', zs.mean(0))
