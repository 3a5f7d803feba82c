"""Text encoders from the single files ComfyUI users have.

- ``text_encoders/llava_llama3_fp16.safetensors`` (or ``_fp8_scaled``): the
  Llama-3 language part in Hugging Face names (``model.layers.N...``).
- ``clip_vision/llava_llama3_vision.safetensors``: the CLIP ViT-L/14-336 vision
  tower (``vision_model.*``) and the llava ``multi_modal_projector.*``.
- ``text_encoders/clip_l.safetensors``: CLIP-L's text model (``text_model.*``).

Configs are read from tensor shapes (head sizes, which shapes cannot tell,
default to the real models' and can be set in a JSON ``config`` metadata
entry); token ids come from the tokenizers. The tensors are then matched to
transformers' module names by their part-relative names, which keeps this
working across transformers versions that nest the llava parts differently.
"""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import init_empty_weights

from ..shared import file_config, files
from ..errors import ModelFileError
from ..shared.tokenizers import check_vocabulary, load_tokenizer
from .text_encoders import TextEncoders

LLAMA_DEFAULTS = {"head_dim": 128, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 8192}
VISION_DEFAULTS = {"head_dim": 64, "layer_norm_eps": 1e-5, "hidden_act": "quick_gelu"}
CLIP_TEXT_DEFAULTS = {"head_dim": 64, "layer_norm_eps": 1e-5, "hidden_act": "quick_gelu"}


def _read(path: Path, wanted_role: str, description: str, folder: str, dtype) -> tuple[dict, dict]:
    keys = files.tensor_keys(path)
    role = files.detect_role(keys)
    if role != wanted_role:
        raise files.wrong_role_error(path, role, description, folder)
    return files.load_state_dict(path, dtype), files.metadata_config(path)


def _strip(state: dict, prefixes: tuple[str, ...]) -> dict:
    out = {}
    for key, value in state.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        out[key] = value
    return out


# Each file's config metadata in transformers' names; sizes come from the shapes and are only checked.
def _sizes(*names: str) -> tuple:
    return tuple(file_config.Name(n, derived=True) for n in names)


_ATTENTION = (file_config.Name("num_attention_heads"), file_config.Name("head_dim"),
              file_config.Name("hidden_act", kind="str", choices=file_config.transformers_activations))
LLAMA_NAMES = _sizes("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_key_value_heads") + (
    file_config.Name("num_attention_heads"), file_config.Name("head_dim"),
    file_config.Name("rms_norm_eps", kind="float"), file_config.Name("rope_theta", kind="float"),
    file_config.Name("max_position_embeddings"),
)
VISION_NAMES = _sizes("hidden_size", "patch_size", "image_size", "intermediate_size", "num_hidden_layers") + _ATTENTION + (
    file_config.Name("layer_norm_eps", kind="float"),
)
CLIP_TEXT_NAMES = _sizes("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                         "max_position_embeddings") + _ATTENTION + (file_config.Name("layer_norm_eps", kind="float"),)


def _llama_config(text: dict, overrides: dict, pad_id: int, bos_id, eos_id, source: str = "The language model"):
    from transformers import LlamaConfig

    vocab, hidden = text["embed_tokens.weight"].shape
    shapes = {"vocab_size": vocab, "hidden_size": hidden,
              "intermediate_size": text["layers.0.mlp.gate_proj.weight"].shape[0],
              "num_hidden_layers": files.block_count(text, "layers.")}
    meta = file_config.read_logged(overrides, LLAMA_NAMES, source, shapes)
    head_dim = file_config.head_dim(meta, LLAMA_DEFAULTS["head_dim"], hidden, source)
    values = {**LLAMA_DEFAULTS, **meta, **shapes, "head_dim": head_dim, "num_attention_heads": hidden // head_dim,
              "num_key_value_heads": text["layers.0.self_attn.k_proj.weight"].shape[0] // head_dim,
              "pad_token_id": pad_id, "bos_token_id": bos_id, "eos_token_id": eos_id}
    return LlamaConfig(**values)


def _vision_config(vision: dict, overrides: dict, source: str = "The vision file"):
    from transformers import CLIPVisionConfig

    hidden, _, patch, _ = vision["embeddings.patch_embedding.weight"].shape
    positions = vision["embeddings.position_embedding.weight"].shape[0]
    shapes = {"hidden_size": hidden, "patch_size": patch, "image_size": int(round((positions - 1) ** 0.5)) * patch,
              "intermediate_size": vision["encoder.layers.0.mlp.fc1.weight"].shape[0],
              "num_hidden_layers": files.block_count(vision, "encoder.layers.")}
    meta = file_config.read_logged(overrides, VISION_NAMES, source, shapes)
    head_dim = file_config.head_dim(meta, VISION_DEFAULTS["head_dim"], hidden, source)
    values = {"hidden_act": VISION_DEFAULTS["hidden_act"], "layer_norm_eps": VISION_DEFAULTS["layer_norm_eps"],
              **{k: v for k, v in meta.items() if k != "head_dim"}, **shapes, "num_attention_heads": hidden // head_dim}
    return CLIPVisionConfig(**values)


def _clip_text_config(clip: dict, overrides: dict, tokenizer, source: str = "The CLIP file"):
    from transformers import CLIPTextConfig

    hidden = clip["embeddings.token_embedding.weight"].shape[1]
    shapes = {"vocab_size": clip["embeddings.token_embedding.weight"].shape[0], "hidden_size": hidden,
              "intermediate_size": clip["encoder.layers.0.mlp.fc1.weight"].shape[0],
              "num_hidden_layers": files.block_count(clip, "encoder.layers."),
              "max_position_embeddings": clip["embeddings.position_embedding.weight"].shape[0]}
    meta = file_config.read_logged(overrides, CLIP_TEXT_NAMES, source, shapes)
    head_dim = file_config.head_dim(meta, CLIP_TEXT_DEFAULTS["head_dim"], hidden, source)
    values = {
        "hidden_act": CLIP_TEXT_DEFAULTS["hidden_act"], "layer_norm_eps": CLIP_TEXT_DEFAULTS["layer_norm_eps"],
        **{k: v for k, v in meta.items() if k != "head_dim"}, **shapes, "num_attention_heads": hidden // head_dim,
        # pooling reads the hidden state at the end-of-text token: take its id from the tokenizer
        "eos_token_id": tokenizer.eos_token_id, "bos_token_id": tokenizer.bos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return CLIPTextConfig(**values)


def _part_of(model_key: str) -> tuple[str, str]:
    """(part, name inside the part) for a key of transformers' llava model."""
    for marker, part in (("multi_modal_projector.", "projector"), ("vision_tower.", "vision"), ("lm_head.", "lm_head")):
        if marker in model_key:
            inner = model_key.split(marker, 1)[1]
            return part, inner.removeprefix("vision_model.") if part == "vision" else inner
    inner = model_key.split("language_model.", 1)[-1]
    return "text", inner.removeprefix("model.")


def _fill(model: torch.nn.Module, parts: dict[str, dict], source: str, part_of=_part_of) -> None:
    def tensor_for(key: str):
        part, inner = part_of(key)
        tensor = parts[part].get(inner)
        if tensor is None and part == "lm_head":
            # Only hidden states are used; the output head may be absent from the file.
            tensor = parts["text"]["embed_tokens.weight"]
        return tensor

    files.assign_weights(model, tensor_for, source)


def load_single_files(
    mllm_path: str | Path,
    vision_path: str | Path,
    clip_path: str | Path,
    llama_tokenizer_dir: str | Path,
    clip_tokenizer_dir: str | Path,
    dtype: torch.dtype = torch.bfloat16,
) -> TextEncoders:
    from transformers import CLIPImageProcessorPil, CLIPTextModel, LlavaConfig, LlavaForConditionalGeneration

    mllm_path, vision_path, clip_path = Path(mllm_path), Path(vision_path), Path(clip_path)
    tokenizer = load_tokenizer(Path(llama_tokenizer_dir), "Llama-3")
    clip_tokenizer = load_tokenizer(Path(clip_tokenizer_dir), "CLIP")
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    if image_id is None or image_id == tokenizer.unk_token_id or tokenizer.pad_token_id is None:
        raise ModelFileError(
            f"The Llama tokenizer in '{llama_tokenizer_dir}' has no <image> or <pad> token: it is not the "
            "llava-llama-3 tokenizer. Use ComfyUI's comfy/text_encoders/llama_tokenizer or the tokenizer/ folder "
            "of the HunyuanVideo-I2V diffusers conversion."
        )

    text, text_overrides = _read(mllm_path, "llama_text_encoder", "the llava-llama-3 text encoder", "text_encoders", dtype)
    text = _strip(text, ("model.", "language_model.model."))
    vision_all, vision_overrides = _read(vision_path, "clip_vision", "the llava-llama-3 vision tower", "clip_vision", dtype)
    projector = {k.split("multi_modal_projector.", 1)[1]: v for k, v in vision_all.items() if "multi_modal_projector." in k}
    if not projector:
        raise ModelFileError(
            f"'{vision_path.name}' is a plain CLIP vision model without llava's multi_modal_projector. "
            "Use llava_llama3_vision.safetensors."
        )
    vision = _strip(
        {k: v for k, v in vision_all.items() if "multi_modal_projector." not in k},
        ("vision_tower.vision_model.", "vision_model.", "vision_tower."),
    )
    clip_state, clip_overrides = _read(clip_path, "clip_text", "CLIP-L (clip_l.safetensors)", "text_encoders", dtype)
    clip_state = _strip(clip_state, ("text_model.",))

    check_vocabulary(tokenizer, text["embed_tokens.weight"].shape[0], "Llama-3", f"'{mllm_path.name}'")
    check_vocabulary(clip_tokenizer, clip_state["embeddings.token_embedding.weight"].shape[0], "CLIP", f"'{clip_path.name}'")
    vision_config = _vision_config(vision, vision_overrides, f"'{vision_path.name}'")
    text_config = _llama_config(text, text_overrides, tokenizer.pad_token_id, tokenizer.bos_token_id,
                                tokenizer.eos_token_id, f"'{mllm_path.name}'")
    config = LlavaConfig(
        vision_config=vision_config.to_dict(), text_config=text_config.to_dict(), image_token_index=image_id,
        pad_token_id=tokenizer.pad_token_id, vision_feature_layer=-2, vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        image_seq_length=(vision_config.image_size // vision_config.patch_size) ** 2,
    )
    config.vision_config.model_type = "clip_vision_model"
    with init_empty_weights():  # parameters on meta, buffers real: load_state_dict(assign=True) fills them
        mllm = LlavaForConditionalGeneration(config)
        clip = CLIPTextModel(_clip_text_config(clip_state, clip_overrides, clip_tokenizer, f"'{clip_path.name}'"))
    _fill(mllm, {"text": text, "vision": vision, "projector": projector, "lm_head": {}}, f"'{mllm_path.name}' + '{vision_path.name}'")
    _fill(clip, {"clip": clip_state}, f"'{clip_path.name}'", lambda key: ("clip", key.removeprefix("text_model.")))
    size = vision_config.image_size
    processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return TextEncoders(mllm, tokenizer, clip, clip_tokenizer, processor, f"'{mllm_path.name}', '{vision_path.name}', '{clip_path.name}'")
