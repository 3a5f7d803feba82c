"""Sequence parallelism for both HunyuanVideo transformers, through diffusers' context parallelism.

diffusers splits the work (``enable_parallelism`` with a ``ContextParallelConfig``
and a ``_cp_plan``; Ulysses all-to-all inside attention). Neither HunyuanVideo
class ships a plan, so this module gives one, plus three hooks no library has
for these models, registered with diffusers' own hook registry:

- Padding: the image token count (frames x height x width after patching) is
  rarely a multiple of the GPU count. Rather than diffusers' uneven mode (its
  final gather needs uneven all-gathers, which gloo lacks), the tokens and the
  rotary tables are padded to a multiple before the split, the padded keys are
  masked, and the padding is cut off after the gather. Every real token then
  sees exactly the keys it sees on one GPU.
- The text: every rank holds the whole prompt, so after Ulysses' all-to-all
  each text key would appear once per rank and weigh that many times in the
  softmax. Its copies are masked on every rank but the first.
- The 13 B token-replace release treats the first frame's tokens apart; the
  count the model computes is global and becomes each shard's own count.

Parallel output equals one-process output to float rounding (tested on CPU
with two gloo processes).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput

from ..errors import UserInputError

# Attention must take a key mask for the padding and the text copies; of the kernels diffusers can split
# across GPUs, PyTorch's SDPA does (flash-attn and sage take none).
PARALLEL_ATTENTION = "native (PyTorch SDPA)"

_HOOK_PREFIX = "hunyuan_i2v_sequence_"

# diffusers' gather calls a torch function that torch 2.13 calls deprecated, once per step on every rank.
warnings.filterwarnings("ignore", message=r".*all_gather_tensor.* is deprecated", category=FutureWarning)


@dataclass
class Shards:
    """Where this rank's slice of the image tokens lies in the current forward pass."""

    rank: int
    degree: int
    tokens: int = 0  # real image tokens in the whole video
    first_frame_tokens: int = 0

    @property
    def padded(self) -> int:
        return -(-self.tokens // self.degree) * self.degree

    @property
    def per_rank(self) -> int:
        return self.padded // self.degree

    @property
    def start(self) -> int:
        return self.rank * self.per_rank

    def real_in_shard(self) -> int:
        """How many of this shard's tokens are real (the padding sits at the end of the last shards)."""
        return max(0, min(self.per_rank, self.tokens - self.start))

    def first_frame_in_shard(self) -> int:
        return max(0, min(self.per_rank, self.first_frame_tokens - self.start))

    def pad(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        missing = self.padded - tensor.shape[dim]
        if missing <= 0:
            return tensor
        padding = [0, 0] * (tensor.ndim - 1 - dim) + [0, missing]
        return F.pad(tensor, padding)

    def key_mask(self, image_len: int, text_len: int, text_mask: torch.Tensor | None, batch: int,
                 device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """[batch, 1, 1, image + text] additive mask of this rank's keys (0 kept, -inf masked)."""
        image = torch.arange(image_len, device=device) < self.real_in_shard()
        image = image.expand(batch, image_len)
        if text_mask is None:
            text = torch.ones(batch, text_len, dtype=torch.bool, device=device)
        else:
            text = text_mask.reshape(batch, -1)[:, -text_len:].to(device=device, dtype=torch.bool)
        if self.rank != 0:  # the text copies every other rank sends through the all-to-all
            text = torch.zeros_like(text)
        keep = torch.cat([image, text], dim=1).view(batch, 1, 1, image_len + text_len)
        # Additive (0 / -inf) rather than boolean: Inductor's CPU code generator fails on the boolean mask
        # once diffusers has all-gathered it inside a compiled block; SDPA takes either.
        return torch.zeros(keep.shape, dtype=dtype, device=device).masked_fill(~keep, float("-inf"))


def plan() -> dict:
    """The context-parallel plan of both HunyuanVideo transformers (they share the module names used here)."""
    split_tokens = ContextParallelInput(split_dim=1, expected_dims=3, split_output=True)
    split_rope = ContextParallelInput(split_dim=0, expected_dims=2, split_output=True)
    return {
        "x_embedder": {0: split_tokens},
        "rope": {0: split_rope, 1: split_rope},
        # Gathered before the output projection, not after it: a LoRA may wrap proj_out in a peft layer, which
        # would add its own ungathered output to the gathered one. proj_out works per token either way.
        "norm_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }


def check_degree(heads: int, degree: int) -> None:
    """Ulysses gives each rank whole attention heads: the rank count must divide the head count."""
    if degree < 2:
        raise UserInputError(f"Sequence parallelism needs at least 2 processes, got {degree}.")
    if heads % degree:
        usable = [n for n in range(2, heads + 1) if heads % n == 0]
        raise UserInputError(
            f"This transformer has {heads} attention heads, which {degree} GPUs cannot share evenly. "
            f"Use {', '.join(map(str, usable))} GPUs."
        )


def enable(model: torch.nn.Module, rank: int, degree: int) -> Shards:
    """Split ``model``'s image tokens over ``degree`` ranks of the default process group (Ulysses)."""
    import torch.distributed as dist
    from diffusers import ContextParallelConfig

    check_degree(int(model.config.num_attention_heads), degree)
    if not dist.is_initialized() or dist.get_world_size() != degree:
        raise UserInputError(
            f"Sequence parallelism over {degree} GPUs needs a process group of {degree} ranks; start the command "
            f"line with torchrun --nproc_per_node {degree}."
        )
    shards = Shards(rank=rank, degree=degree)
    token_replace = _has_token_replace_blocks(model)
    # Inner hooks first: the padding must run before diffusers' split, the cut after its gather.
    _register(model, "count", _CountTokens(shards, model.config))
    _register(model.x_embedder, "pad", _PadOutput(shards, index=None, dim=1))
    _register(model.rope, "pad", _PadOutput(shards, index=(0, 1), dim=0))
    with _cpu_device_count():
        model.enable_parallelism(config=ContextParallelConfig(ulysses_degree=degree), cp_plan=plan())
    _register(model.norm_out, "cut", _CutOutput(shards))
    for block in list(model.transformer_blocks) + list(getattr(model, "single_transformer_blocks", [])):
        _register(block.attn, "mask", _MaskKeys(shards))
        if token_replace:
            _register(block, "first_frame", _FirstFrameTokens(shards))
    return shards


def is_enabled(model: torch.nn.Module) -> bool:
    return getattr(model, "_parallel_config", None) is not None


def degree(model: torch.nn.Module) -> int:
    """How many ranks share each video's tokens (1 when the model is not split)."""
    split = getattr(getattr(model, "_parallel_config", None), "context_parallel_config", None)
    return int(split.ulysses_degree * split.ring_degree) if split is not None else 1


def _register(module: torch.nn.Module, name: str, hook) -> None:
    HookRegistry.check_if_exists_or_initialize(module).register_hook(hook, _HOOK_PREFIX + name)



def _has_token_replace_blocks(model: torch.nn.Module) -> bool:
    return any("TokenReplace" in type(block).__name__ for block in model.transformer_blocks)


class _cpu_device_count:
    """diffusers picks each rank's device as ``rank % torch.accelerator.device_count()``, which divides by zero
    on a CPU-only PyTorch (gloo ranks); count the CPU as one device while it does."""

    def __enter__(self):
        self.original = None
        if torch.accelerator.device_count() == 0:
            self.original = torch.accelerator.device_count
            torch.accelerator.device_count = lambda: 1
        return self

    def __exit__(self, *exc):
        if self.original is not None:
            torch.accelerator.device_count = self.original
        return False


class _CountTokens(ModelHook):
    """Reads the video's token counts from the transformer's input before anything is split."""

    def __init__(self, shards: Shards, config):
        super().__init__()
        self.shards, self.config = shards, config

    def pre_forward(self, module, *args, **kwargs):
        latents = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        frames, height, width = latents.shape[-3:]
        p, p_t = self.config.patch_size, self.config.patch_size_t
        self.shards.first_frame_tokens = (height // p) * (width // p)
        self.shards.tokens = (frames // p_t) * self.shards.first_frame_tokens
        if self.shards.tokens < self.shards.degree:
            raise UserInputError(
                f"This video has {self.shards.tokens} image tokens, fewer than the {self.shards.degree} GPUs "
                "sharing them; use fewer GPUs for so small a video."
            )
        return args, kwargs


class _PadOutput(ModelHook):
    """Pads a module's output (or the outputs at ``index``) along ``dim`` to a multiple of the rank count."""

    def __init__(self, shards: Shards, index, dim: int):
        super().__init__()
        self.shards, self.index, self.dim = shards, index, dim

    def post_forward(self, module, output):
        if self.index is None:
            return self.shards.pad(output, self.dim)
        output = list(output)
        for i in self.index:
            output[i] = self.shards.pad(output[i], self.dim)
        return tuple(output)


class _CutOutput(ModelHook):
    """Drops the padding from the gathered output."""

    def __init__(self, shards: Shards):
        super().__init__()
        self.shards = shards

    def post_forward(self, module, output):
        return output[:, : self.shards.tokens]


class _MaskKeys(ModelHook):
    """Gives an attention layer the key mask of this rank: padding and text copies masked."""

    def __init__(self, shards: Shards):
        super().__init__()
        self.shards = shards

    def pre_forward(self, module, *args, **kwargs):
        args = list(args)
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        text = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
        given = kwargs.get("attention_mask", args[2] if len(args) > 2 else None)
        text_len = 0 if text is None else text.shape[1]
        mask = self.shards.key_mask(hidden.shape[1], text_len, given, hidden.shape[0], hidden.device, hidden.dtype)
        if len(args) > 2:
            args[2] = mask
        else:
            kwargs["attention_mask"] = mask
        return tuple(args), kwargs


class _FirstFrameTokens(ModelHook):
    """The 13 B token-replace blocks' first-frame token count, as this shard's own count."""

    INDEX = 6  # hidden_states, encoder_hidden_states, temb, attention_mask, freqs_cis, token_replace_emb, num_tokens

    def __init__(self, shards: Shards):
        super().__init__()
        self.shards = shards

    def pre_forward(self, module, *args, **kwargs):
        local = self.shards.first_frame_in_shard()
        if "num_tokens" in kwargs or len(args) <= self.INDEX:
            kwargs["num_tokens"] = local
            return args, kwargs
        args = list(args)
        args[self.INDEX] = local
        return tuple(args), kwargs
