"""captum reference for Integrated Gradients from the normal-film baseline (`--ig-baseline normal`)
with the tiny test network: tests/fixtures/reference/sample_ig_normal_32.npy and
normal_film.json.

The baseline is the model input of tests/fixtures/reference/ig-reference-normal.png exactly as
cxr-viewer preprocesses it (its own preprocessing is checked against Pillow by the other
fixtures), dumped first with

    cxr-viewer analyze tests/fixtures/reference/ig-reference-normal.png \
        --model tests/fixtures/reference/model-normal-film.json --dump-input --out /tmp/ref

then: python scripts/make_normal_film_fixture.py /tmp/ref/ig-reference-normal/input.npy
(the venv of scripts/requirements-reference.txt)."""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from captum.attr import IntegratedGradients
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_reference_fixtures import TinyResNet  # noqa: E402

FIX = Path(__file__).resolve().parent.parent / "tests/fixtures/reference"
cfg = json.loads((FIX / "model.json").read_text())
arch = cfg["architecture"]
model = TinyResNet(arch["width"], arch["layers"], arch["head_hidden"], len(cfg["classes"]), cfg["dropout"])
model.load_state_dict(load_file(FIX / cfg["weights"]), strict=False)
model.eval()
baseline = torch.from_numpy(np.load(sys.argv[1]).astype(np.float32)).reshape(1, 3, 224, 224)
x = torch.from_numpy(np.load(FIX / "input_sample.npy").astype(np.float32)).reshape(1, 3, 224, 224)
out = {}
for target in (0, 1):
    ig = IntegratedGradients(model)
    attr, delta = ig.attribute(x, baselines=baseline, target=target, n_steps=32,
                               method="gausslegendre", return_convergence_delta=True)
    with torch.no_grad():
        fx = model(x)[0, target].item()
        fb = model(baseline)[0, target].item()
    np.save(FIX / f"sample_ig_normal_32_c{target}.npy", attr.sum(1)[0].detach().numpy().astype(np.float32))
    out[f"c{target}"] = dict(delta=float(delta), f_input=fx, f_baseline=fb, n_steps=32,
                             method="gausslegendre")
    print(target, out[f"c{target}"])
(FIX / "normal_film.json").write_text(json.dumps(out, indent=2) + "\n")
