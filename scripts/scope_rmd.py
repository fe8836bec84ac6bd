"""Relative Mahalanobis distance (Ren et al. 2021, "A simple fix to Mahalanobis distance for
improving near-OOD detection") on the `scope-fit` feature cache: analysis only, nothing shipped.

Per depth: class-conditional Gaussians with a shared within-class covariance (PPCA, 32
directions, on the class-centred training features) give MD_k; a background Gaussian on all
training films (the shipped PPCA) gives MD_0; RMD = min_k MD_k − MD_0. Reported per depth and as
the mean over the seven depths, beside the shipped score, with the shipped 98.5th-percentile rule
on the validation films. docs/scope-guard-log.md, nineteenth session. Same arguments as
scope_variants.py:

    python scripts/scope_rmd.py CACHE ../shared/data/kermany weights/training/split.csv
"""
import sys, csv, os
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scope_variants
from scope_variants import load_cache, DEPTHS, fit, dist
files, feats = load_cache(sys.argv[1])
root = sys.argv[2]
split={}; lab={}
for row in csv.DictReader(open(sys.argv[3])):
    p=os.path.join(root,row['file']); split[p]=row['split']; lab[p]=row['label']
idx={f:i for i,f in enumerate(files)}
tr=[idx[f] for f,s in split.items() if s=='train' and f in idx]
va=[idx[f] for f,s in split.items() if s=='val' and f in idx]
ytr=np.array([lab[files[i]]=='PNEUMONIA' for i in tr])
cats={}
for f,i in idx.items():
    if '/ood/' in f: cats.setdefault(f.split('/ood/')[1].split('/')[0],[]).append(i)
def report(name, score):
    scope_variants.report(name, score, va, cats, width=30, cat_width=10)
base=[]; rmd=[]; rmd_bg=[]; cc=[]
for dn in DEPTHS:
    X=feats[dn].astype(np.float64); Xtr=X[tr]
    bg=fit(Xtr,32); d0=dist(bg,X); base.append(d0)
    # shared within-class covariance: centre each class, fit PPCA, then distance to each class mean
    mus=[Xtr[ytr==c].mean(0) for c in (False,True)]
    Xc=Xtr.copy()
    for c,m in zip((False,True),mus): Xc[ytr==c]-=m
    st=fit(Xc,32)  # st['mu']~0
    dk=[]
    for m in mus:
        st2=dict(st); st2['mu']=st['mu']+m
        dk.append(dist(st2,X))
    dmin=np.minimum(*dk); cc.append(dmin)
    rmd.append(dmin-d0)
    report(f'base {dn}', d0); report(f'cc-shared {dn}', dmin); report(f'RMD {dn}', dmin-d0)
report('base MEAN', np.mean(base,0))
report('cc-shared MEAN', np.mean(cc,0))
report('RMD MEAN', np.mean(rmd,0))
report('base+RMD MEAN', np.mean(base,0)+np.mean(rmd,0))
