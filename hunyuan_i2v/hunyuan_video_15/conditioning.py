"""HunyuanVideo-1.5's conditioning: the prompt in Qwen's chat template, glyph text, SigLIP image tokens, image latent.

Follows diffusers' HunyuanVideo15ImageToVideoPipeline: the prompt goes into a
system + user conversation, the hidden state 3 from the end is kept after the
system part is cropped (its length measured from the tokenizer, not the 108 of
the real one); text in quotes is read a second time by ByT5 as glyphs; the
start image feeds SigLIP and the VAE.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import torch
from PIL import Image

from ..errors import UserInputError
from . import defaults

log = logging.getLogger(__name__)

# Text in straight or curly double quotes is written text the video should show.
GLYPH_PATTERN = re.compile(r"\"(.*?)\"|“(.*?)”")


@dataclass
class PromptEmbedding:
    text: torch.Tensor  # [1, L, D] Qwen hidden states after the system part (padded)
    text_mask: torch.Tensor  # [1, L]
    glyph: torch.Tensor  # [1, G, d] ByT5 states of the quoted text (zeros when there is none)
    glyph_mask: torch.Tensor  # [1, G]


@dataclass
class I2VConditioning:
    """What the encode node hands the sampler."""

    positive: PromptEmbedding
    negative: PromptEmbedding
    image_embeds: torch.Tensor  # [1, N, E] SigLIP last hidden state of the start image
    image_latent: torch.Tensor  # [1, C, 1, h, w], scaled by the VAE factor
    width: int
    height: int
    start_image: torch.Tensor  # [1, H, W, 3] the cropped start image, 0..1
    latent_scale: float  # the VAE's scaling factor
    spatial_ratio: int
    temporal_ratio: int
    family: str = defaults.NAME
    notes: list = field(default_factory=list)


def glyph_text(prompt: str) -> str | None:
    """The quoted parts of a prompt, as the reference hands them to ByT5: 'Text "a". Text "b". '."""
    found = [a or b for a, b in GLYPH_PATTERN.findall(prompt)]
    if len(found) > 1:
        found = list(dict.fromkeys(found))
    return "".join(f'Text "{text}". ' for text in found) if found else None


def _conversation(prompt: str) -> list[dict]:
    return [{"role": "system", "content": defaults.SYSTEM_MESSAGE}, {"role": "user", "content": prompt or " "}]


def _qwen_chat(messages: list[dict]) -> str:
    """Qwen's chat format, for a tokenizer saved without its chat template (ComfyUI's bundled one)."""
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


def _tokenize(tokenizer, prompt: str, **kwargs):
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [_conversation(prompt)], add_generation_prompt=True, tokenize=True, return_dict=True, **kwargs
        )
    return tokenizer(_qwen_chat(_conversation(prompt)), **kwargs)


def system_prefix_length(tokenizer) -> int:
    """Tokens the template puts before the user's text: two prompts that differ from their first character share them."""
    first, second = (list(_tokenize(tokenizer, text)["input_ids"]) for text in ("x", "y"))
    first, second = (ids[0] if ids and isinstance(ids[0], list) else ids for ids in (first, second))
    shared = 0
    for a, b in zip(first, second):
        if a != b:
            break
        shared += 1
    return shared


def _text_states(encoders, prompt: str, crop: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    max_length = defaults.MAX_TEXT_TOKENS + crop
    tokens = _tokenize(
        encoders.tokenizer, prompt, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
    )
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    cut = int(mask.sum()) >= max_length
    device = encoders.device
    with torch.no_grad():
        hidden = encoders.text_encoder(
            input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True
        ).hidden_states[-(defaults.HIDDEN_LAYERS_TO_SKIP + 1)]
    return hidden[:, crop:], mask[:, crop:].to(hidden.device), cut


def _glyph_states(encoders, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
    text = glyph_text(prompt)
    model = encoders.glyph_encoder
    param = next(model.parameters())
    if text is None:
        width = model.config.d_model
        return (torch.zeros(1, defaults.MAX_GLYPH_TOKENS, width, dtype=param.dtype, device=param.device),
                torch.zeros(1, defaults.MAX_GLYPH_TOKENS, dtype=torch.int64, device=param.device))
    tokens = encoders.glyph_tokenizer(
        text, padding="max_length", max_length=defaults.MAX_GLYPH_TOKENS, truncation=True,
        add_special_tokens=True, return_tensors="pt",
    ).to(param.device)
    with torch.no_grad():
        states = model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask.float())[0]
    return states, tokens.attention_mask


def encode_prompt(encoders, prompt: str, crop: int, notes: list[str]) -> PromptEmbedding:
    text, mask, cut = _text_states(encoders, prompt, crop)
    if cut:
        notes.append(f"The prompt was cut to {defaults.MAX_TEXT_TOKENS} tokens; the rest is ignored.")
    glyph, glyph_mask = _glyph_states(encoders, prompt)
    return PromptEmbedding(text, mask, glyph, glyph_mask)


def image_processor(spatial_ratio: int):
    """diffusers' own 1.5 image processor: the reference's buckets, crop and pixel scaling."""
    from diffusers.pipelines.hunyuan_video1_5.image_processor import HunyuanVideo15ImageProcessor

    return HunyuanVideo15ImageProcessor(vae_scale_factor=spatial_ratio, do_resize=False, do_convert_rgb=True)


def vision_states(encoders, start: Image.Image) -> torch.Tensor:
    """SigLIP's last hidden state of the (already cropped) start image: [1, N, E]."""
    inputs = encoders.image_processor.preprocess(images=start, do_resize=True, return_tensors="pt", do_convert_rgb=True)
    encoder = encoders.image_encoder
    param = next(encoder.parameters())
    with torch.no_grad():
        return encoder(**inputs.to(device=param.device, dtype=param.dtype)).last_hidden_state


def encode(encoders, vae, pil: Image.Image, prompt: str, negative_prompt: str, width: int, height: int):
    """Encode the start image (any size; resized and cropped here) and both prompts."""
    if not isinstance(prompt, str) or not isinstance(negative_prompt or "", str):
        raise UserInputError("The prompt and negative prompt must be text.")
    processor = image_processor(vae.spatial_ratio)
    start = processor.resize(pil, height=height, width=width, resize_mode="crop")
    notes: list[str] = []
    crop = system_prefix_length(encoders.tokenizer)
    positive = encode_prompt(encoders, prompt, crop, notes)
    negative = encode_prompt(encoders, negative_prompt or "", crop, notes)

    image_embeds = vision_states(encoders, start)
    pixels = processor.preprocess(start, height=height, width=width)  # [1, 3, H, W] in -1..1
    image_latent = vae.encode_image(pixels)
    start_tensor = torch.from_numpy(processor.pil_to_numpy(start)).float()  # [1, H, W, 3] in 0..1
    return I2VConditioning(
        positive, negative, image_embeds, image_latent, width, height, start_tensor, vae.scaling_factor,
        vae.spatial_ratio, vae.temporal_ratio, notes=notes,
    )
