#!/usr/bin/env python3
"""Generate the Python reference fixtures the Rust (Candle) engine is tested against.

Writes tests/fixtures/reference/:
  tiny.safetensors, model.json, resnet50_param_names.json,
  input_{sample,random}.npy, preprocessed_sample_gray.npy,
  <input>_layer4.npy, <input>_gradcam_{c0,c1}.npy, <input>_gradcam_alpha_c1.npy,
  <input>_ig_{black,white}_{8,32}.npy, reference.json,
  person45_bacteria_221.jpeg
(README.md and ATTRIBUTION.md in that folder are maintained by hand.)

Deterministic (seeded), CPU, float32. Run with:
    .venv/bin/python scripts/make_reference_fixtures.py
Pinned package versions: scripts/requirements-reference.txt
"""

import json
import os
import random
import shutil
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import Bottleneck, conv1x1
from PIL import Image, __version__ as PIL_VERSION
import safetensors
from safetensors.torch import save_file, load_file
import captum
from captum.attr import IntegratedGradients
import pytorch_grad_cam
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.image import scale_cam_image
import scipy.ndimage

try:
    from importlib.metadata import version as pkg_version
except ImportError:  # pragma: no cover
    pkg_version = None

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "reference"
SAMPLE_JPEG = Path("/work/shared/samples/person45_bacteria_221.jpeg")

SEED = 20240611
WIDTH = 8
LAYERS = [1, 1, 1, 1]
HIDDEN = 16
CLASSES = ["NORMAL", "PNEUMONIA"]
DROPOUT = 0.25
SIZE = 224
MEAN = 0.48
STD = 0.24
IG_STEPS = [8, 32]


# --------------------------------------------------------------------------------------
# Model: exactly torchvision's ResNet naming, parameterised width / depth / head.
# --------------------------------------------------------------------------------------
class TinyResNet(nn.Module):
    """torchvision.models.ResNet(Bottleneck, layers) with base width `width` (64 in
    torchvision) and head fc = Sequential(Dropout, Linear, ReLU, Dropout, Linear)."""

    def __init__(self, width, layers, hidden, num_classes, p):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(width, layers[0], stride=1)
        self.layer2 = self._make_layer(2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = make_head(8 * width * Bottleneck.expansion, hidden, num_classes, p)

    def _make_layer(self, planes, blocks, stride):
        # mirrors torchvision.models.resnet.ResNet._make_layer (groups=1, dilation=1)
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * Bottleneck.expansion, stride),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        mods = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        for _ in range(1, blocks):
            mods.append(Bottleneck(self.inplanes, planes))
        return nn.Sequential(*mods)

    def forward_features(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return x

    def forward(self, x):
        x = self.forward_features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


def make_head(in_features, hidden, num_classes, p):
    return nn.Sequential(
        nn.Dropout(p),
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(p),
        nn.Linear(hidden, num_classes),
    )


def sd_names_shapes(module):
    return [
        [k, list(v.shape)]
        for k, v in module.state_dict().items()
        if not k.endswith("num_batches_tracked")
    ]


def check_resnet50_equivalence():
    """Our class at width 64 / [3,4,6,3] must equal torchvision resnet50 + our head."""
    ours = TinyResNet(64, [3, 4, 6, 3], 256, len(CLASSES), DROPOUT)
    ref = torchvision.models.resnet50(weights=None)
    ref.fc = make_head(2048, 256, len(CLASSES), DROPOUT)
    a, b = sd_names_shapes(ours), sd_names_shapes(ref)
    assert a == b, "state_dict names/shapes differ from torchvision resnet50"
    # the full state_dict (incl. num_batches_tracked) must also match key-for-key
    assert list(ours.state_dict().keys()) == list(ref.state_dict().keys())
    # and the forward pass must agree when weights are shared
    ours.load_state_dict(ref.state_dict())
    ours.eval(); ref.eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-5)
    print(f"resnet50 equivalence OK: {len(b)} tensors (without num_batches_tracked)")
    return b


# --------------------------------------------------------------------------------------
# Initialisation: torchvision-style kaiming convs, random BN affine params, running stats
# calibrated on data (so eval-mode activations stay O(1)) and then perturbed.
# --------------------------------------------------------------------------------------
def init_tiny_model(model, calib_batch, g):
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=g)
        elif isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            with torch.no_grad():
                m.weight.copy_(0.6 + 0.8 * torch.rand(n, generator=g))       # [0.6, 1.4]
                m.bias.copy_(0.1 + 0.2 * torch.randn(n, generator=g))         # mostly > 0
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=5 ** 0.5, generator=g)
            bound = 1.0 / m.in_features ** 0.5
            with torch.no_grad():
                m.bias.uniform_(-bound, bound, generator=g)

    # Calibrate running stats: cumulative average over one train-mode pass.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model.forward_features(calib_batch)
    # Perturb so the stats are clearly "non-trivial" and not batch-exact.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.add_(0.05 * torch.randn(n, generator=g) * m.running_var.sqrt())
                m.running_var.mul_(0.8 + 0.4 * torch.rand(n, generator=g))
                m.momentum = 0.1
                m.num_batches_tracked.zero_()
    model.eval()

    # Final Linear: order, scale and shift it so that the two fixture inputs (first two
    # rows of calib_batch: sample, random) get clearly different predictions around the
    # 0.5 threshold: sample -> PNEUMONIA (margin l1-l0 = +0.8, p ~ 0.69),
    # random -> NORMAL (margin -0.5, p ~ 0.38), with logits of order 1.
    with torch.no_grad():
        fc4 = model.fc[4]
        feats = torch.flatten(model.avgpool(model.forward_features(calib_batch[:2])), 1)
        h = model.fc[2](model.fc[1](feats))
        z = h @ fc4.weight.T                      # pre-bias logits [2 inputs, 2 classes]
        if z[0, 1] - z[0, 0] < z[1, 1] - z[1, 0]:
            fc4.weight.copy_(fc4.weight.flip(0))
            z = z.flip(1)
        scale = 1.3 / ((z[0, 1] - z[0, 0]) - (z[1, 1] - z[1, 0]))
        fc4.weight.mul_(scale)
        z = z * scale
        bias = -z.mean(0) + torch.tensor([0.1, 0.25])  # mean margin over the two inputs = +0.15
        fc4.bias.copy_(bias)
    return model


# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------
def normalise(img01_chw):
    return ((img01_chw - MEAN) / STD).astype(np.float32)


def load_sample_gray():
    im = Image.open(SAMPLE_JPEG)
    src_mode = im.mode
    im = im.convert("L").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    gray = np.asarray(im, dtype=np.float32) / 255.0
    return gray.astype(np.float32), src_mode


def smooth_random_rgb(rng):
    noise = rng.standard_normal((3, SIZE, SIZE))
    out = np.stack([scipy.ndimage.gaussian_filter(c, sigma=6.0, mode="reflect") for c in noise])
    out = (out - out.min()) / (out.max() - out.min())
    return out.astype(np.float32)


# --------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------
def gradcam_reference(model, x, target):
    """Run pytorch-grad-cam; return (raw 7x7 map, alpha [K], library 224x224 output,
    library's own raw map). Raw = ReLU(sum_k alpha_k A^k), alpha = mean_hw dlogit/dA."""
    layer = model.layer4[-1]
    with GradCAM(model=model, target_layers=[layer]) as cam:
        lib_out = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])  # [1,224,224]
        acts = cam.activations_and_grads.activations[0].numpy()    # [1,K,7,7]
        grads = cam.activations_and_grads.gradients[0].numpy()     # [1,K,7,7]
        alpha_lib = cam.get_cam_weights(x, layer, None, acts, grads)           # [1,K]
        cam_lib = cam.get_cam_image(x, layer, None, acts, grads)               # [1,7,7], no ReLU
        raw_lib = np.maximum(cam_lib, 0)[0]

    # Independent computation with plain autograd.
    feats = {}
    h = layer.register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
    xx = x.clone().requires_grad_(False)
    out = model(xx)
    h.remove()
    A = feats["a"]
    (dA,) = torch.autograd.grad(out[0, target], A)
    alpha = dA[0].mean(dim=(1, 2))
    raw = torch.relu((alpha[:, None, None] * A[0]).sum(0)).detach().numpy().astype(np.float32)
    alpha = alpha.detach().numpy().astype(np.float32)

    assert np.allclose(alpha, alpha_lib[0], rtol=1e-5, atol=1e-7), "alpha mismatch vs library"
    assert np.allclose(raw, raw_lib, rtol=1e-4, atol=1e-6), "raw cam mismatch vs library"
    # library output = cv2.resize(minmax(raw), 224x224) followed by another min-max
    rescaled = scale_cam_image(scale_cam_image(raw[None], (SIZE, SIZE)))[0]
    lib_diff = float(np.abs(rescaled - lib_out[0]).max())
    assert lib_diff < 1e-4, f"library 224 map differs from minmax+resize(raw): {lib_diff}"
    return raw, alpha, lib_out[0].astype(np.float32), lib_diff


def ig_reference(model, x, baseline, n_steps, target=1):
    ig = IntegratedGradients(model)
    attr, delta = ig.attribute(
        x, baselines=baseline, target=target, n_steps=n_steps,
        method="gausslegendre", return_convergence_delta=True,
    )
    attr_sum = attr[0].sum(0).detach().numpy().astype(np.float32)  # [224,224]
    with torch.no_grad():
        fx = model(x)[0, target].item()
        fb = model(baseline)[0, target].item()
    d = float(delta.item())
    # sanity-check the sign convention: delta = sum(attr) - (F(x) - F(baseline))
    manual = float(attr.double().sum().item()) - (fx - fb)
    assert abs(manual - d) < 1e-3 + 1e-3 * abs(fx - fb), (manual, d)
    return attr_sum, d, fx, fb, float(attr.double().sum().item())


def save_npy(name, arr):
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    np.save(OUT / name, arr)
    return {"file": name, "shape": list(arr.shape)}


def version_of(dist, fallback):
    try:
        return pkg_version(dist)
    except Exception:
        return fallback


def main():
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    random.seed(SEED)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    OUT.mkdir(parents=True, exist_ok=True)

    r50 = check_resnet50_equivalence()
    with open(OUT / "resnet50_param_names.json", "w") as f:
        f.write("[\n" + ",\n".join("  " + json.dumps(e) for e in r50) + "\n]\n")

    # ---- inputs
    rng = np.random.default_rng(SEED)
    gray, src_mode = load_sample_gray()
    sample01 = np.repeat(gray[None], 3, axis=0)
    random01 = smooth_random_rgb(rng)
    inputs = OrderedDict(
        sample=normalise(sample01)[None],
        random=normalise(random01)[None],
    )
    np.save(OUT / "preprocessed_sample_gray.npy", gray.astype(np.float32))
    for k, v in inputs.items():
        np.save(OUT / f"input_{k}.npy", v)
    shutil.copyfile(SAMPLE_JPEG, OUT / SAMPLE_JPEG.name)

    # ---- model (calibrated on the two inputs plus a few more smooth random images)
    g = torch.Generator().manual_seed(SEED)
    calib = [torch.from_numpy(v) for v in inputs.values()]
    calib += [torch.from_numpy(normalise(smooth_random_rgb(rng))[None]) for _ in range(6)]
    calib = torch.cat(calib)
    model = TinyResNet(WIDTH, LAYERS, HIDDEN, len(CLASSES), DROPOUT)
    init_tiny_model(model, calib, g)
    model.eval()

    tensors = OrderedDict(
        (k, v.detach().to(torch.float32).contiguous().clone())
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    )
    save_file(tensors, str(OUT / "tiny.safetensors"), metadata={"format": "pt"})
    os.chmod(OUT / "tiny.safetensors", 0o644)
    # reload to make sure the saved file is what we evaluate
    reloaded = TinyResNet(WIDTH, LAYERS, HIDDEN, len(CLASSES), DROPOUT)
    missing, unexpected = reloaded.load_state_dict(load_file(str(OUT / "tiny.safetensors")), strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    model = reloaded.eval()
    for p in model.parameters():
        p.requires_grad_(True)

    model_json = {
        "name": "tiny-resnet-fixture",
        "weights": "tiny.safetensors",
        "architecture": {"family": "resnet-bottleneck", "layers": LAYERS, "width": WIDTH,
                         "head_hidden": HIDDEN},
        "classes": CLASSES,
        "positive_class": "PNEUMONIA",
        "input": {"width": SIZE, "height": SIZE, "channels": 3, "resize": "squash",
                  "mean": [MEAN] * 3, "std": [STD] * 3},
        "dropout": DROPOUT,
        "threshold": 0.5,
        "temperature": 1.0,
    }
    with open(OUT / "model.json", "w") as f:
        json.dump(model_json, f, indent=2)
        f.write("\n")

    black = torch.full((1, 3, SIZE, SIZE), (0.0 - MEAN) / STD, dtype=torch.float32)
    white = torch.full((1, 3, SIZE, SIZE), (1.0 - MEAN) / STD, dtype=torch.float32)
    baselines = OrderedDict(black=black, white=white)

    ref = OrderedDict()
    ref["versions"] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "grad-cam": version_of("grad-cam", getattr(pytorch_grad_cam, "__version__", "?")),
        "captum": captum.__version__,
        "safetensors": version_of("safetensors", "?"),
        "numpy": np.__version__,
        "pillow": PIL_VERSION,
    }
    ref["seed"] = SEED
    ref["conventions"] = {
        "layout": "NCHW, float32, C order",
        "inputs": "input_*.npy are already normalised: (x01 - mean) / std, mean 0.48, std 0.24 per channel",
        "classes": CLASSES,
        "model_mode": "eval (dropout off, BN uses running stats)",
        "gradcam": "raw map = ReLU(sum_k alpha_k A^k) on model.layer4[-1] output (after the block's final ReLU), "
                   "alpha_k = mean_{h,w} d logit_c / d A^k (raw logits, no softmax); before any min-max scaling or resize. "
                   "pytorch-grad-cam output = minmax(cv2.resize(minmax(raw), 224x224, INTER_LINEAR)) with minmax(m) = (m-min)/(max-min+1e-7)",
        "ig": "captum IntegratedGradients on raw logits, target class 1, method gausslegendre; attributions summed over channels -> [224,224]",
        "ig_baselines": {"black": (0.0 - MEAN) / STD, "white": (1.0 - MEAN) / STD,
                         "note": "constant image in normalised space: pixel value 0 (black) or 1 (white) normalised"},
        "ig_delta": "captum convention: delta = sum(attributions) - (F(x) - F(baseline)), F = logit of target class",
        "ig_convergence": "this random-weight ReLU/max-pool net has a very rough IG integrand (shattered gradients), so "
                          "Gauss-Legendre converges slowly and non-monotonically in n_steps: compare against captum at the "
                          "same n_steps; do not assert |delta_32| < |delta_8|",
        "sample_preprocessing": f"PIL open (source mode {src_mode}) -> convert('L') -> resize((224,224), Image.BILINEAR) "
                                "(antialiased, aspect ratio squashed) -> /255 -> replicate to 3 channels -> normalise",
    }
    ref["inputs"] = OrderedDict()

    for name, xnp in inputs.items():
        x = torch.from_numpy(xnp)
        entry = OrderedDict()
        entry["input"] = {"file": f"input_{name}.npy", "shape": list(xnp.shape)}
        with torch.no_grad():
            feats = model.forward_features(x)
            logits = model(x)[0]
        probs = torch.softmax(logits, 0)
        entry["logits"] = [float(v) for v in logits]
        entry["probs"] = [float(v) for v in probs]
        entry["layer4"] = save_npy(f"{name}_layer4.npy", feats[0].numpy())
        entry["layer4"].update(mean=float(feats.mean()), max=float(feats.max()),
                               frac_nonzero=float((feats > 0).float().mean()))

        gc = OrderedDict()
        for c in (1, 0):
            raw, alpha, lib224, lib_diff = gradcam_reference(model, x, c)
            info = save_npy(f"{name}_gradcam_c{c}.npy", raw)
            info["map"] = raw.tolist()
            info["max"] = float(raw.max())
            info["library_224_minmax_check_maxabs"] = lib_diff
            info["library_224_mean"] = float(lib224.mean())
            if c == 1:
                info["alpha"] = save_npy(f"{name}_gradcam_alpha_c1.npy", alpha)
                info["alpha"]["sum"] = float(alpha.sum())
            gc[f"c{c}"] = info
        entry["gradcam"] = gc

        igd = OrderedDict()
        for bname, b in baselines.items():
            for n in IG_STEPS:
                attr, delta, fx, fb, s = ig_reference(model, x, b, n)
                info = save_npy(f"{name}_ig_{bname}_{n}.npy", attr)
                info.update(delta=delta, sum_attr=s, f_input=fx, f_baseline=fb, n_steps=n,
                            baseline_value=float(b[0, 0, 0, 0]))
                igd[f"{bname}_{n}"] = info
        entry["ig"] = igd
        ref["inputs"][name] = entry

    with open(OUT / "reference.json", "w") as f:
        json.dump(ref, f, indent=2)
        f.write("\n")

    # ---- report
    print("versions:", ref["versions"])
    for name, e in ref["inputs"].items():
        print(f"[{name}] logits={np.round(e['logits'], 5).tolist()} probs={np.round(e['probs'], 5).tolist()}")
        print(f"  layer4 mean={e['layer4']['mean']:.4f} max={e['layer4']['max']:.4f} "
              f"frac_nonzero={e['layer4']['frac_nonzero']:.3f}")
        for c in ("c1", "c0"):
            print(f"  gradcam {c}: max={e['gradcam'][c]['max']:.5g} lib-check={e['gradcam'][c]['library_224_minmax_check_maxabs']:.2e}")
        print("  gradcam c1 raw 7x7:")
        print(np.array2string(np.array(e["gradcam"]["c1"]["map"]), precision=4, suppress_small=True))
        for k, v in e["ig"].items():
            print(f"  IG {k:9s}: delta={v['delta']:+.3e}  sum={v['sum_attr']:+.5f}  F(x)-F(b)={v['f_input'] - v['f_baseline']:+.5f}")
    total = sum(p.stat().st_size for p in OUT.iterdir() if p.is_file())
    print(f"total fixture size: {total / 1e6:.2f} MB")

    # sanity assertions
    s, r = ref["inputs"]["sample"], ref["inputs"]["random"]
    for e in (s, r):
        assert all(abs(v) < 20 for v in e["logits"]), "logits not O(1)"
        assert e["layer4"]["frac_nonzero"] > 0.05
        assert e["gradcam"]["c1"]["max"] > 0
    assert max(abs(a - b) for a, b in zip(s["logits"], r["logits"])) > 0.05, "logits do not differ"
    assert total < 4.5e6


if __name__ == "__main__":
    main()
