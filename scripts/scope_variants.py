"""Scope-guard variants on the `scope-fit` feature cache (analysis only; nothing here is shipped).

Re-fits the shipped detector in numpy (standardised features, PPCA with 32 directions per depth,
d²/D, mean over the seven depths) and compares it with ℓ2-normalised features ("Mahalanobis++",
Mueller & Hein 2025) and with per-depth scores standardised (z of log d²/D over the training films)
or combined by Fisher's method (Haroush et al. 2022) before the mean. Thresholds: the 98.5th
percentile of the validation films, as shipped. docs/scope-guard-log.md, eighteenth session.

    cxr-viewer scope-fit --data ../shared/data/kermany --split weights/training/split.csv \
        --out /tmp/refit.scope.safetensors --quantile 0.985 --cache CACHE
    cxr-viewer scope-report --ood ../shared/ood --data ../shared/data/kermany \
        --split weights/training/split.csv --cache CACHE
    python scripts/scope_variants.py CACHE ../shared/data/kermany weights/training/split.csv
"""
import json, struct, sys, csv, os
import numpy as np

def load_cache(p):
    b = open(p, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    hdr = json.loads(b[8:8 + n]); data = b[8 + n:]
    meta = hdr.pop('__metadata__')
    files = meta['files'].split('\n')
    out = {}
    for k, v in hdr.items():
        s, e = v['data_offsets']
        out[k] = np.frombuffer(data[s:e], dtype='<f4').reshape(v['shape'])
    return files, out

DEPTHS = ["layer1", "layer2", "layer3", "layer4", "layer2.regions4", "layer3.regions4", "layer4.regions3"]

def fit(X, k=32, l2=False):
    X = X.astype(np.float64)
    if l2: X = X / np.linalg.norm(X, axis=1, keepdims=True)
    mu = X.mean(0); sd = X.std(0, ddof=1)
    floor = max(0.1 * np.sort(sd)[len(sd) // 2], 1e-6); sd = np.maximum(sd, floor)
    Z = (X - mu) / sd
    n, d = Z.shape
    trace = (Z ** 2).sum() / n
    # exact top-k via SVD of Z (n x d); use Z Z^T when d large
    if d > n:
        G = Z @ Z.T / n
        w, U = np.linalg.eigh(G); idx = np.argsort(w)[::-1][:k]
        lam = w[idx]; V = (Z.T @ U[:, idx]) / np.sqrt(n * lam)
    else:
        C = Z.T @ Z / n
        w, V = np.linalg.eigh(C); idx = np.argsort(w)[::-1][:k]
        lam = w[idx]; V = V[:, idx]
    resid = max(trace - lam.sum(), 1e-6 * trace) / max(d - k, 1)
    return dict(mu=mu, sd=sd, V=V, lam=np.maximum(lam, 1e-6), resid=resid, l2=l2)

def dist(st, X):
    X = X.astype(np.float64)
    if st['l2']: X = X / np.linalg.norm(X, axis=1, keepdims=True)
    Z = (X - st['mu']) / st['sd']
    P = Z @ st['V']
    tot = (Z ** 2).sum(1); ex = (P ** 2).sum(1)
    d2 = (P ** 2 / st['lam']).sum(1) + np.maximum(tot - ex, 0) / st['resid']
    return d2 / Z.shape[1]

def auroc(neg, pos):
    allv = np.concatenate([neg, pos]); r = allv.argsort().argsort().astype(float) + 1
    # ties ignored (continuous)
    rp = r[len(neg):].sum()
    return (rp - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))

def report(name, score, va, cats, width=18, cat_width=8):
    """One line: the share of validation films flagged at their 98.5th percentile (the shipped
    rule), then per out-of-scope category (`cats`: name -> indices) the AUROC and share flagged."""
    v = score[va]; thr = np.quantile(v, 0.985)
    line = f'{name:{width}s} val {np.mean(v > thr)*100:4.1f}%'
    for c in sorted(cats):
        s = score[cats[c]]
        line += f' | {c[:cat_width]} {auroc(v, s):.3f} {np.mean(s > thr)*100:5.1f}%'
    print(line, flush=True)

def main():
    files, feats = load_cache(sys.argv[1])
    split = {}
    root = sys.argv[2]
    for row in csv.DictReader(open(sys.argv[3])):
        split[os.path.join(root, row['file'])] = row['split']
    idx = {f: i for i, f in enumerate(files)}
    tr = [idx[f] for f, s in split.items() if s == 'train' and f in idx]
    va = [idx[f] for f, s in split.items() if s == 'val' and f in idx]
    cats = {}
    for f, i in idx.items():
        if '/ood/' in f:
            cats.setdefault(f.split('/ood/')[1].split('/')[0], []).append(i)
    print('train', len(tr), 'val', len(va), {c: len(v) for c, v in cats.items()})
    variants = {}
    for l2 in (False, True):
        S = {}
        for dn in DEPTHS:
            st = fit(feats[dn][tr], 32, l2)
            S[dn] = {'train': dist(st, feats[dn][tr]), 'all': dist(st, feats[dn])}
        variants['l2' if l2 else 'base'] = S
    def show(name, score):
        report(name, score, va, cats, width=28, cat_width=10)
    for vn, S in variants.items():
        for dn in DEPTHS:
            show(f'{vn} {dn}', S[dn]['all'])
        mean = np.mean([S[dn]['all'] for dn in DEPTHS], 0)
        show(f'{vn} MEAN', mean)
        # z of log score by training distribution
        zs = []
        for dn in DEPTHS:
            lt = np.log(S[dn]['train']); la = np.log(S[dn]['all'])
            zs.append((la - lt.mean()) / lt.std())
        show(f'{vn} mean z(log)', np.mean(zs, 0))
        # Fisher with empirical training CDF (upper tail), smoothed
        lp = []
        for dn in DEPTHS:
            t = np.sort(S[dn]['train']); a = S[dn]['all']
            p = (len(t) - np.searchsorted(t, a) + 1) / (len(t) + 1)
            lp.append(np.log(p))
        show(f'{vn} fisher(emp)', -np.sum(lp, 0))

if __name__ == "__main__":
    main()
