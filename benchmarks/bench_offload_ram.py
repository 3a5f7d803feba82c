"""Host RAM while block offload is set up: peak extra RSS / the model's weight bytes, diffusers' own setup against
the pack's (weights pinned in place first). Prints ratios; asserts nothing.

    python benchmarks/bench_offload_ram.py [--layers 8] [--hidden 1024]

Each mode runs in a fresh process. This machine may have no GPU, and CPU-only PyTorch cannot pin memory, so
pinning is simulated: ``Tensor.pin_memory`` makes a same-size copy and remembers it as pinned, which is what real
pinning costs in host RAM; diffusers' own per-tensor setup step (``ModuleGroup._to_cpu``, what it runs for every
weight when streams are on) is called on every parameter, as ``enable_group_offload`` would on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _reset_peak() -> None:
    """Start the peak (VmHWM) afresh, so imports and model building before the setup do not count (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak() -> int:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_one(mode: str, layers: int, hidden: int) -> dict:
    """In this process: build a bf16 HunyuanVideo-1.5 transformer, set block offload up, return the figures."""
    import torch

    sys.path.insert(0, str(ROOT))
    from diffusers import HunyuanVideo15Transformer3DModel
    from diffusers.hooks.group_offloading import ModuleGroup

    from hunyuan_i2v.shared import acceleration

    pinned: set[int] = set()

    def fake_pin(self, device=None):
        if self.data_ptr() in pinned:
            return self
        copy = self.clone()
        pinned.add(copy.data_ptr())
        return copy

    torch.Tensor.pin_memory = fake_pin
    torch.Tensor.is_pinned = lambda self, device=None: self.data_ptr() in pinned
    with torch.device("meta"):
        model = HunyuanVideo15Transformer3DModel(
            in_channels=65, out_channels=32, num_attention_heads=hidden // 128, attention_head_dim=128,
            num_layers=layers, num_refiner_layers=1, text_embed_dim=256, text_embed_2_dim=64, image_embed_dim=64,
        )
    model = model.to(dtype=torch.bfloat16).to_empty(device="cpu")
    for param in model.parameters():
        param.data.normal_(0, 0.02)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    kept = {}

    def diffusers_setup(**kwargs):  # what enable_group_offload does for each weight when it uses streams
        for param in model.parameters():
            kept[param] = ModuleGroup._to_cpu(param, False)

    model.enable_group_offload = diffusers_setup
    before = _rss()
    _reset_peak()
    if mode == "diffusers":
        model.enable_group_offload(onload_device=torch.device("cuda"))
    else:
        acceleration.enable_block_offload(model, torch.device("cuda"), torch.device("cpu"))
    peak = _peak()
    return {"mode": mode, "weights": weights, "extra_peak": peak - before, "ratio": (peak - before) / weights + 1}


def measure(mode: str, layers: int, hidden: int) -> dict:
    # A fixed mmap threshold: glibc would otherwise raise it after the first large free and keep later freed
    # tensors in its heap, counting memory the process no longer uses.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1048576")
    out = subprocess.run([sys.executable, __file__, "--one", mode, "--layers", str(layers), "--hidden", str(hidden)],
                         capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--one")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.layers, args.hidden)))
        return
    base = measure("diffusers", args.layers, args.hidden)
    pack = measure("pack", args.layers, args.hidden)
    gib = 2**30
    print(f"weights {base['weights'] / gib:.2f} GiB")
    for result in (base, pack):
        print(f"  {result['mode']:<10} peak host RAM during setup: x{result['ratio']:.2f} of the weights "
              f"(+{result['extra_peak'] / gib:.2f} GiB over the loaded model)")
    print(f"  pack / diffusers extra memory: x{pack['extra_peak'] / max(base['extra_peak'], 1):.3f}")


if __name__ == "__main__":
    main()
