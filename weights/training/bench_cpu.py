#!/usr/bin/env python3
"""Measure seconds/image of a ResNet-50 training step (fwd+bwd+AdamW) on CPU.

Used to size the interim CPU run (input size S and number of epochs).

    .venv/bin/python weights/training/bench_cpu.py --sizes 128 160 224 --threads 2
"""
import argparse
import time

import torch
import torch.nn as nn
import torchvision


def build(p=0.3):
    m = torchvision.models.resnet50(weights=None)
    m.fc = nn.Sequential(nn.Dropout(p), nn.Linear(2048, 256), nn.ReLU(inplace=True),
                         nn.Dropout(p), nn.Linear(256, 2))
    return m


def bench(size, batch, steps, channels_last, bf16):
    torch.manual_seed(0)
    m = build().train()
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, size, size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,))
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i > 0:  # first step is warm-up
            times.append(time.perf_counter() - t0)
    return sum(times) / len(times) / batch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 160, 224])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", nargs="+", default=["cl", "cl-bf16", "plain"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__} threads={torch.get_num_threads()}", flush=True)
    for s in a.sizes:
        for mode in a.modes:
            spi = bench(s, a.batch, a.steps, channels_last=mode.startswith("cl"), bf16="bf16" in mode)
            print(f"S={s:4d} mode={mode:8s} {spi:.4f} s/img  ({1/spi:.1f} img/s)", flush=True)


if __name__ == "__main__":
    main()
