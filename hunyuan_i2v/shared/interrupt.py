"""Cancel inside a stage, and progress where the libraries report none.

A step of the 13 B model at 720p can take a minute, a tiled 720p decode several, and a text encoder a while on a
CPU; checking for Cancel only between steps, or not at all in encode and decode, leaves the user waiting for work
they threw away. So, for the length of one stage call, every repeated block of the models it runs (transformer
blocks, language-model layers, VAE blocks) gets a forward pre-hook that calls the host's ``poll`` (which raises to
cancel) and counts progress. Hooks are PyTorch's own (``register_forward_pre_hook``): they run outside a compiled
block's graph and beside diffusers' cache and offload hooks, and they are removed when the call ends, however it
ends. No library offers this, hence this module.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable

import torch

Poll = Callable[[], None]
Progress = Callable[[int, int], None]  # (done, total)

# Containers of repeated blocks, by attribute name, in the models the stages run.
_BLOCK_LISTS = (
    "transformer_blocks", "single_transformer_blocks",  # both HunyuanVideo transformers
    "layers",  # transformers' language models and vision towers (Llama, Qwen2.5-VL, CLIP, SigLIP encoders)
    "block", "blocks",  # T5 / ByT5 stacks; Qwen2.5-VL's vision tower
    "down_blocks", "up_blocks", "mid_block",  # diffusers' VAE encoder and decoder
)


def repeated_blocks(modules: Iterable[torch.nn.Module]) -> list[torch.nn.Module]:
    """The repeated blocks inside ``modules`` (each block once), in module order."""
    found, seen = [], set()
    for root in modules:
        for _, module in root.named_modules():
            for attribute in _BLOCK_LISTS:
                child = getattr(module, attribute, None)
                items = list(child) if isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential)) else (
                    [child] if isinstance(child, torch.nn.Module) and attribute == "mid_block" else [])
                for block in items:
                    if id(block) not in seen:
                        seen.add(id(block))
                        found.append(block)
    return found


@contextmanager
def checkpoints(modules: Iterable[torch.nn.Module], poll: Poll | None = None, on_block: Callable[[], None] | None = None):
    """Call ``poll`` (and ``on_block``) before every repeated block of ``modules`` runs, for the ``with`` body."""
    if poll is None and on_block is None:
        yield
        return

    def before_block(module, args):
        if poll is not None:
            poll()
        if on_block is not None:
            on_block()

    handles = [block.register_forward_pre_hook(before_block) for block in repeated_blocks(modules)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def counted(modules: Iterable[torch.nn.Module], poll: Poll | None, on_progress: Progress | None, total: int):
    """``checkpoints`` that also report (blocks run, ``total``) to ``on_progress``; the count never passes total."""
    state = {"done": 0}
    total = max(1, int(total))

    def on_block():
        state["done"] += 1
        if on_progress is not None:
            on_progress(min(state["done"], total - 1), total)

    with checkpoints(modules, poll, on_block if on_progress is not None else None):
        yield
    if on_progress is not None:
        on_progress(total, total)


class _ShapeOnlyDecoder(torch.nn.Module):
    """Stands in for a VAE decoder: returns an empty video of the right shape on the meta device, counting calls."""

    def __init__(self, spatial: int, temporal: int):
        super().__init__()
        self.spatial, self.temporal, self.calls = spatial, temporal, 0

    def forward(self, z, *args, **kwargs):
        self.calls += 1
        b, _, f, h, w = z.shape
        return torch.empty(b, 3, (f - 1) * self.temporal + 1, h * self.spatial, w * self.spatial, device="meta")


def decoder_calls(vae_model: torch.nn.Module, latents: torch.Tensor) -> int:
    """How many times the VAE's decode will run its decoder (tiles, temporal chunks) for ``latents``.

    Found by running diffusers' own decode on the meta device with the decoder swapped for a shape-only stand-in
    (no hooks of the real decoder run), so the count follows the library's tiling rules, whatever they are; 1 if
    that cannot be done.
    """
    decoder = getattr(vae_model, "decoder", None)
    if decoder is None:
        return 1
    stand_in = _ShapeOnlyDecoder(int(getattr(vae_model, "spatial_compression_ratio", 8)),
                                 int(getattr(vae_model, "temporal_compression_ratio", 4)))
    vae_model.decoder = stand_in
    try:
        with torch.no_grad():
            vae_model.decode(torch.empty(latents.shape, device="meta"), return_dict=False)
    except Exception:  # noqa: BLE001 - a VAE whose decode needs real tensors elsewhere: progress per call only
        pass
    finally:
        vae_model.decoder = decoder
    return max(1, stand_in.calls)
