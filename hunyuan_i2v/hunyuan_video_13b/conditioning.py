"""Image + text conditioning: the I2V prompt template, image tokens, CLIP pooled vector.

The conditioning keeps the MLLM's image tokens and text tokens apart; the
sampler subsamples the image tokens by the release's interleave (2 for v1,
4 for v2) once it knows which transformer it drives, so one encode serves
either release.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from ..errors import UserInputError
from ..shared.images import StartImage, black_image_like
from .text_encoders import TextEncoders
from .vae import LoadedVAE

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "<image>\nDescribe the video by detailing the following aspects according to the reference image: "
    "1. The main content and theme of the video."
    "2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects."
    "3. Actions, events, behaviors temporal relationships, physical movement changes of the objects."
    "4. background environment, light, style and atmosphere."
    "5. camera angles, movements, and transitions used in the video:"
)
TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\n" + SYSTEM_PROMPT + "<|eot_id|>\n\n"
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
DEFAULT_NEGATIVE_PROMPT = "deformation, a poor composition and deformed video, bad teeth, bad eyes, bad limbs"
MAX_TEXT_TOKENS = 256
CLIP_MAX_TOKENS = 77
HIDDEN_LAYERS_TO_SKIP = 2  # hidden state taken two layers before the last
# The tokens "<|eot_id|><|start_header_id|>assistant<|end_header_id|>" end the
# user turn; the reference drops them from the text embedding.
ASSISTANT_HEADER_TOKENS = 4


@dataclass
class PromptEmbedding:
    image_tokens: torch.Tensor  # [1, L, D] MLLM hidden states of the image tokens
    text_tokens: torch.Tensor  # [1, T, D] user-prompt hidden states (padded)
    text_mask: torch.Tensor  # [1, T]
    pooled: torch.Tensor  # [1, P] CLIP-L pooled vector

    def sequence(self, interleave: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings and mask as the transformer takes them: image tokens, then text."""
        image = self.image_tokens[:, ::interleave] if 0 < interleave < 6 else self.image_tokens
        mask = torch.ones(image.shape[:2], dtype=self.text_mask.dtype, device=self.text_mask.device)
        return torch.cat([image, self.text_tokens], dim=1), torch.cat([mask, self.text_mask], dim=1)


@dataclass
class I2VConditioning:
    """What the encode node hands the sampler."""

    positive: PromptEmbedding
    negative: PromptEmbedding | None
    image_latent: torch.Tensor  # [1, C, 1, h, w], scaled by the VAE factor
    width: int
    height: int
    start_image: torch.Tensor  # [1, H, W, 3] the cropped start image, 0..1
    latent_scale: float  # the VAE's scaling factor (LATENT outputs hold unscaled latents, as ComfyUI's do)
    family: str = "hunyuan_video_13b"
    notes: list = field(default_factory=list)  # things the user should read (shown on the node)


@dataclass(frozen=True)
class TemplateLayout:
    crop_start: int  # tokens before the user prompt
    image_position: int  # index of the <image> token
    image_token_count: int  # features the vision tower yields per image


def template_layout(encoders: TextEncoders) -> TemplateLayout:
    """Where the template puts the prompt and image, measured with this tokenizer.

    The reference hard-codes 103 and 5 for its tokenizer; measuring keeps any
    tokenizer (and tiny test ones) right.
    """
    tokenizer, config = encoders.tokenizer, encoders.mllm.config
    prefix_ids = tokenizer(TEMPLATE.split("{}")[0], add_special_tokens=True)["input_ids"]
    positions = [i for i, t in enumerate(prefix_ids) if t == config.image_token_index]
    if len(positions) != 1:
        raise UserInputError(
            "The Llama tokenizer does not map '<image>' to the model's image token "
            f"(id {config.image_token_index}); it is not the llava-llama-3 tokenizer. Use the tokenizer folder "
            "that comes with the text encoder."
        )
    vision = config.vision_config
    count = (vision.image_size // vision.patch_size) ** 2
    if getattr(config, "vision_feature_select_strategy", "default") == "full":
        count += 1
    return TemplateLayout(len(prefix_ids), positions[0], count)


def _mllm_tokens(encoders: TextEncoders, pil_image, prompt: str, layout: TemplateLayout):
    tokenizer, mllm = encoders.tokenizer, encoders.mllm
    device = encoders.device
    max_length = MAX_TEXT_TOKENS + layout.crop_start
    tokens = tokenizer(
        TEMPLATE.format(prompt), max_length=max_length, padding="max_length", truncation=True, return_tensors="pt"
    )
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    if int(mask.sum()) >= max_length:
        log.warning("The prompt was cut to %d tokens; the rest is ignored.", MAX_TEXT_TOKENS)

    # The single <image> token stands for all the vision features: widen it.
    pos, count = layout.image_position, layout.image_token_count
    image_ids = torch.full((1, count), mllm.config.image_token_index, dtype=ids.dtype)
    wide_ids = torch.cat([ids[:, :pos], image_ids, ids[:, pos + 1:]], dim=1)
    wide_mask = torch.cat([mask[:, :pos], torch.ones_like(image_ids), mask[:, pos + 1:]], dim=1)
    position_ids = (wide_mask.cumsum(-1) - 1).masked_fill_(wide_mask == 0, 1)

    pixels = encoders.image_processor(pil_image, return_tensors="pt").pixel_values
    with torch.no_grad():
        hidden = mllm(
            input_ids=wide_ids.to(device),
            attention_mask=wide_mask.to(device),
            position_ids=position_ids.to(device),
            pixel_values=pixels.to(device, encoders.dtype),
            output_hidden_states=True,
        ).hidden_states[-(HIDDEN_LAYERS_TO_SKIP + 1)]

    # Keep the user prompt and the padding after it, drop the system part and
    # the assistant header; positions shift by count - 1 after the image.
    shift = count - 1
    end_header = tokenizer.convert_tokens_to_ids("<|end_header_id|>")
    headers = (ids[0] == end_header).nonzero().flatten().tolist()
    assistant_start = headers[-1] + 1 if len(headers) >= 3 else ids.shape[1]
    text_end = assistant_start - ASSISTANT_HEADER_TOKENS
    keep = list(range(layout.crop_start, text_end)) + list(range(assistant_start, ids.shape[1]))
    keep_t = torch.tensor(keep, device=hidden.device)
    text_tokens = hidden[:, keep_t + shift]
    text_mask = mask[:, keep].to(hidden.device)
    image_tokens = hidden[:, pos: pos + count]
    return image_tokens, text_tokens, text_mask


def _clip_pooled(encoders: TextEncoders, prompt: str) -> torch.Tensor:
    tokens = encoders.clip_tokenizer(
        prompt, padding="max_length", max_length=CLIP_MAX_TOKENS, truncation=True, return_tensors="pt"
    )
    full = encoders.clip_tokenizer(prompt)["input_ids"]
    if len(full) > CLIP_MAX_TOKENS:
        log.warning("CLIP-L reads only %d tokens; the end of the prompt is ignored.", CLIP_MAX_TOKENS)
    device = next(encoders.clip.parameters()).device
    with torch.no_grad():
        return encoders.clip(tokens.input_ids.to(device), output_hidden_states=False).pooler_output


def encode_prompt(encoders: TextEncoders, pil_image, prompt: str) -> PromptEmbedding:
    layout = template_layout(encoders)
    image_tokens, text_tokens, text_mask = _mllm_tokens(encoders, pil_image, prompt, layout)
    return PromptEmbedding(image_tokens, text_tokens, text_mask, _clip_pooled(encoders, prompt))


def encode(
    encoders: TextEncoders,
    vae: LoadedVAE,
    start: StartImage,
    prompt: str,
    negative_prompt: str | None = None,
) -> I2VConditioning:
    """Encode the start image and prompts. ``negative_prompt`` None or '' skips the negative."""
    if not isinstance(prompt, str):
        raise UserInputError("The prompt must be text.")
    positive = encode_prompt(encoders, start.pil, prompt)
    negative = None
    if negative_prompt:
        # As in the reference, the negative branch sees a black image of the same size.
        negative = encode_prompt(encoders, black_image_like(start.pil), negative_prompt)
    image_latent = vae.encode_image(start.pixels_signed())
    return I2VConditioning(
        positive, negative, image_latent, start.width, start.height, start.tensor, vae.scaling_factor
    )
