"""IG baselines for PNEUMONIA films, with the shipped model in PyTorch + captum (an experiment,
not part of the app): the all-black baseline against one confident NORMAL training film, and an
Expected-Gradients-style average over the 8 most confidently NORMAL films (Erion et al. 2021).
Per film: F(x) - F(x') (target logit), the relative completeness gap, and deletion AOPC on a 14x14
grid towards a Gaussian-blurred (sigma 8 px) copy in 4 steps, roughly as
src/explain/faithfulness.rs does, against 3 random orderings.

Usage (the venv of scripts/bench_python.py; folders of the *training* split only):
    python scripts/ig_baseline_experiment.py NORMAL_DIR PNEUMONIA_DIR
README ("How far each map can be trusted", IG's baseline) quotes one run."""
import sys, glob, json
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_python import build, preprocess
from captum.attr import IntegratedGradients
import torchvision.transforms.functional as TF
torch.set_num_threads(2)
model, cfg = build(Path(__file__).resolve().parent.parent / 'weights/model.json')
T = cfg['temperature']; pos = cfg['classes'].index(cfg['positive_class'])
def prob(x):
    with torch.no_grad():
        return torch.softmax(model(x) / T, -1)[:, pos]
normals = sorted(glob.glob(sys.argv[1] + '/*'))[:120]
xs = torch.cat([preprocess(Path(f), cfg) for f in normals])
ps = torch.cat([prob(xs[i:i+16]) for i in range(0, len(xs), 16)])
order = torch.argsort(ps)
refs = xs[order[:8]]
print('reference normals P:', [round(float(ps[i]), 4) for i in order[:8]])
pneu = sorted(glob.glob(sys.argv[2] + '/*'))[:6]
ig = IntegratedGradients(model)
def attr(x, b, steps):
    a, d = ig.attribute(x, baselines=b, target=pos, n_steps=steps, method='gausslegendre',
                        internal_batch_size=8, return_convergence_delta=True)
    return a.sum(1)[0].detach().numpy(), float(d)
def aopc(x, cellscore):
    blurred = TF.gaussian_blur(x, kernel_size=65, sigma=8.0)
    order = np.argsort(-cellscore.ravel())
    p0 = float(prob(x)); ds = []
    for k in range(4):
        n = int(round(196 * k / 4)); m = torch.zeros(1, 1, 14, 14)
        for c in order[:n]: m[0, 0, c // 14, c % 14] = 1
        m = torch.nn.functional.interpolate(m, size=(224, 224), mode='nearest')
        xk = x * (1 - m) + blurred * m
        ds.append(p0 - float(prob(xk)))
    return float(np.mean(ds))
def cells(a):
    return np.clip(a, 0, None).reshape(14, 16, 14, 16).sum((1, 3))
rng = np.random.default_rng(0)
rows = []
for f in pneu:
    x = preprocess(Path(f), cfg)
    black = torch.full_like(x, 0.0); black = (black - torch.tensor(cfg['input']['mean']).view(1,3,1,1)) / torch.tensor(cfg['input']['std']).view(1,3,1,1)
    with torch.no_grad():
        fx = float(model(x)[0, pos]); fb = float(model(black)[0, pos]); fr = float(model(refs[:1])[0, pos])
    a_black, d_black = attr(x, black, 32)
    a_ref, d_ref = attr(x, refs[:1], 32)
    eg = np.zeros((224, 224)); fe = []
    for r in refs:
        a, _ = attr(x, r[None], 8); eg += a / len(refs)
    with torch.no_grad(): fe = float(model(refs)[:, pos].mean())
    rand = np.mean([aopc(x, rng.random((14, 14))) for _ in range(3)])
    row = dict(film=Path(f).name, P=round(float(prob(x)),3), span_black=round(fx-fb,3), span_ref=round(fx-fr,3), span_eg=round(fx-fe,3),
               gap_black=round(abs(d_black)/max(abs(fx-fb),1e-9),3), gap_ref=round(abs(d_ref)/max(abs(fx-fr),1e-9),3),
               aopc_black=round(aopc(x, cells(a_black)),4), aopc_ref=round(aopc(x, cells(a_ref)),4), aopc_eg=round(aopc(x, cells(eg)),4), aopc_random=round(rand,4))
    print(json.dumps(row)); rows.append(row)
for k in ['aopc_black', 'aopc_ref', 'aopc_eg', 'aopc_random', 'span_black', 'span_ref', 'span_eg']:
    print(k, round(float(np.mean([r[k] for r in rows])), 4))
