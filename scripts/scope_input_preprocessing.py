"""Scope-guard variant: Lee et al. 2018's input pre-processing for the Mahalanobis score (analysis
only; nothing here is shipped; docs/scope-guard-log.md, twentieth session).

Through the PyTorch copy of the model: the seven depths of the shipped detector (pooled mean and
deviation of layer1-4, region means of layer2/3 on a 4x4 grid and layer4 on 3x3), PPCA with 32
directions per depth fitted on the 4,422 training films (scripts/scope_variants.py's fit), score =
mean d^2/D. Then, per validation and out-of-scope film, x' = x - eps * sign(grad_x score(x)) (a
step that brings the film nearer the training films; Lee et al. find in-distribution inputs move
more) and the score of x'; threshold at the 98.5th percentile of the validation films' perturbed
scores, as shipped.

    python scripts/scope_input_preprocessing.py     # from the repository root; ../shared beside it

(about 15 minutes on 2 cores; the training features are cached in /tmp/scope_lee_feats.npz).
"""
import sys, csv, os, time
from pathlib import Path
import numpy as np, torch, torch.nn.functional as Fn
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_python as b
import scope_variants
from scope_variants import fit
torch.set_num_threads(2)
model, cfg = b.build(Path('weights/model.json'))
for p in model.parameters(): p.requires_grad_(False)
acts = {}
for name in ['layer1', 'layer2', 'layer3', 'layer4']:
    getattr(model, name).register_forward_hook(lambda m, i, o, n=name: acts.__setitem__(n, o))

def feats(x):
    model(x)
    out = []
    for n in ['layer1', 'layer2', 'layer3', 'layer4']:
        a = acts[n]; out.append(torch.cat([a.mean((2, 3)), a.std((2, 3))], 1))
    out.append(Fn.adaptive_avg_pool2d(acts['layer2'], 4).flatten(1))
    out.append(Fn.adaptive_avg_pool2d(acts['layer3'], 4).flatten(1))
    out.append(Fn.adaptive_avg_pool2d(acts['layer4'], 3).flatten(1))
    return out

root, split_csv, ood = '../shared/data/kermany', 'weights/training/split.csv', '../shared/ood'
files = [(os.path.join(root, r['file']), r['split']) for r in csv.DictReader(open(split_csv))]
files += [(str(p), 'ood:' + p.parent.name) for p in sorted(Path(ood).glob('*/*.jpg'))]
cache = '/tmp/scope_lee_feats.npz'
if not os.path.exists(cache):
    F = [[] for _ in range(7)]
    t = time.time()
    for s in range(0, len(files), 16):
        x = torch.cat([b.preprocess(Path(f), cfg) for f, _ in files[s:s+16]])
        with torch.no_grad():
            for k, f in enumerate(feats(x)): F[k].append(f.numpy())
        if s % 800 == 0: print(s, time.time() - t, flush=True)
    np.savez(cache, *[np.concatenate(f) for f in F])
Z = np.load(cache); F = [Z[f'arr_{k}'] for k in range(7)]
splits = np.array([s for _, s in files])
tr = np.where(splits == 'train')[0]; va = np.where(splits == 'val')[0]
cats = {c: np.where(splits == 'ood:' + c)[0] for c in sorted({s[4:] for s in splits if s.startswith('ood:')})}
stats = [fit(f[tr], 32) for f in F]
T = [{k: torch.tensor(v, dtype=torch.float32) if isinstance(v, np.ndarray) else v for k, v in st.items()} for st in stats]

def score_t(fs):
    tot = 0
    for f, st in zip(fs, T):
        z = (f - st['mu']) / st['sd']; p = z @ st['V']
        d2 = (p ** 2 / st['lam']).sum(1) + torch.clamp((z ** 2).sum(1) - (p ** 2).sum(1), min=0) / st['resid']
        tot = tot + d2 / z.shape[1]
    return tot / len(T)

def report(name, score):
    scope_variants.report(name, score, va, cats)

with torch.no_grad():
    base = score_t([torch.tensor(f, dtype=torch.float32) for f in F]).numpy()
report('eps 0 (cache)', base)
EPS = [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016]
ev = np.concatenate([va] + list(cats.values()))
out = np.zeros((len(EPS), len(files)))
t = time.time()
for s in range(0, len(ev), 8):
    ix = ev[s:s+8]
    x = torch.cat([b.preprocess(Path(files[i][0]), cfg) for i in ix]).requires_grad_(True)
    sc = score_t(feats(x)); sc.sum().backward()
    g = x.grad.sign()
    with torch.no_grad():
        for e, eps in enumerate(EPS):
            out[e, ix] = score_t(feats(x - eps * g)).numpy()
    if s % 160 == 0: print(s, len(ev), time.time() - t, flush=True)
for e, eps in enumerate(EPS):
    report(f'eps {eps}', out[e])
    adults = cats['adult_frontal_cxr']
    print(f'  median score / unperturbed: validation {np.median(out[e][va]) / np.median(base[va]):.3f}, '
          f'adults {np.median(out[e][adults]) / np.median(base[adults]):.3f}')
