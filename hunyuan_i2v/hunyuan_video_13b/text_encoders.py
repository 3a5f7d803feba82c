"""The 13 B model's text encoders: llava-llama-3 (MLLM with its vision tower) and CLIP-L, from a diffusers folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelFileError
from ..shared.tokenizers import check_vocabulary, load_tokenizer


@dataclass
class TextEncoders:
    mllm: torch.nn.Module  # transformers LlavaForConditionalGeneration
    tokenizer: object  # Llama-3 tokenizer with <image> and pad tokens
    clip: torch.nn.Module  # transformers CLIPTextModel
    clip_tokenizer: object
    image_processor: object  # CLIPImageProcessorPil for the vision tower
    source: str
    run_on_cpu: bool = False  # keep the 8 B MLLM off the GPU (slower encode, no VRAM)
    family: str = "hunyuan_video_13b"

    @property
    def large_module(self) -> torch.nn.Module:
        """The module worth storing in fp8 (the 8 B MLLM)."""
        return self.mllm

    @property
    def device(self) -> torch.device:
        return next(self.mllm.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.mllm.parameters()).dtype

    def modules(self) -> list[torch.nn.Module]:
        return [self.mllm, self.clip]


def load_diffusers_folder(folder: str | Path, dtype: torch.dtype = torch.bfloat16) -> TextEncoders:
    from transformers import CLIPImageProcessorPil, CLIPTextModel, LlavaForConditionalGeneration

    folder = Path(folder)
    needed = ["text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "image_processor"]
    missing = [name for name in needed if not (folder / name).is_dir()]
    if missing:
        raise ModelFileError(
            f"diffusers folder '{folder}' lacks {', '.join(missing)}/. A HunyuanVideo-I2V folder holds "
            f"{', '.join(needed)} (the community conversion has them all)."
        )
    config = json.loads((folder / "text_encoder" / "config.json").read_text())
    if config.get("model_type") != "llava":
        raise ModelFileError(
            f"'{folder / 'text_encoder'}' is a {config.get('model_type')} model; HunyuanVideo-I2V needs the "
            "llava-llama-3 MLLM (model_type 'llava'). This looks like the text-to-video folder."
        )
    tokenizer = load_tokenizer(folder / "tokenizer", "Llama-3")
    clip_tokenizer = load_tokenizer(folder / "tokenizer_2", "CLIP")
    mllm = LlavaForConditionalGeneration.from_pretrained(folder / "text_encoder", dtype=dtype)
    clip = CLIPTextModel.from_pretrained(folder / "text_encoder_2", dtype=dtype)
    check_vocabulary(tokenizer, mllm.get_input_embeddings().num_embeddings, "Llama-3", f"'{folder.name}/text_encoder'")
    check_vocabulary(clip_tokenizer, clip.get_input_embeddings().num_embeddings, "CLIP", f"'{folder.name}/text_encoder_2'")
    # Only hidden states are used: share the output head with the embedding table instead of
    # holding a second 128k x 4096 matrix (about 1 GB in bf16).
    mllm.lm_head.weight = mllm.get_input_embeddings().weight
    processor = CLIPImageProcessorPil.from_pretrained(folder / "image_processor")
    return TextEncoders(
        mllm.eval().requires_grad_(False), tokenizer, clip.eval().requires_grad_(False), clip_tokenizer, processor,
        f"diffusers folder '{folder.name}'",
    )
