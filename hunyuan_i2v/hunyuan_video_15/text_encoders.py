"""HunyuanVideo-1.5's encoders: Qwen2.5-VL's language model, the ByT5 glyph encoder and SigLIP.

From a diffusers folder (everything, tokenizers included) or from ComfyUI's
single files:

- ``text_encoders/qwen_2.5_vl_7b[_fp8_scaled].safetensors``: Qwen2.5-VL in Hugging Face names
  (``model.layers.N...``, plus its own vision tower ``visual.*`` and ``lm_head``, neither used here);
- ``text_encoders/byt5_small_glyphxl_fp16.safetensors``: ``shared.*`` + ``encoder.*`` (T5 names);
- ``clip_vision/sigclip_vision_patch14_384.safetensors``: ``vision_model.*`` with the pooling head.

Configs are read from the shapes; what shapes cannot tell defaults to the real
models' values and can be set in a JSON ``config`` metadata entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import init_empty_weights

from ..errors import ModelFileError
from ..shared import file_config, files
from ..shared.tokenizers import check_vocabulary, load_tokenizer

QWEN_DEFAULTS = {
    "head_dim": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "mrope_section": [16, 24, 24],
    "max_position_embeddings": 128000,
}
BYT5_DEFAULTS = {"d_kv": 64, "layer_norm_epsilon": 1e-6, "relative_attention_max_distance": 128}
SIGLIP_DEFAULTS = {"head_dim": 72, "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh"}
# The input size of published SigLIP towers, by (patch, patches per side): the position table
# rounds the size down to whole patches (384 px / 14 = 27), so the shapes alone cannot give it.
SIGLIP_IMAGE_SIZES = {(14, 27): 384, (16, 24): 384, (16, 32): 512, (14, 16): 224, (16, 16): 256}


@dataclass
class TextEncoders:
    text_encoder: torch.nn.Module  # transformers Qwen2_5_VLTextModel
    tokenizer: object  # Qwen2 tokenizer with a chat template (or none: the Qwen format is written then)
    glyph_encoder: torch.nn.Module  # transformers T5EncoderModel (ByT5)
    glyph_tokenizer: object  # ByT5Tokenizer
    image_encoder: torch.nn.Module  # transformers SiglipVisionModel
    image_processor: object  # SigLIP preprocessing
    source: str
    run_on_cpu: bool = False  # keep the 7 B language model off the GPU (slower encode, no VRAM)
    family: str = "hunyuan_video_15"

    @property
    def device(self) -> torch.device:
        return next(self.text_encoder.parameters()).device

    @property
    def large_module(self) -> torch.nn.Module:
        return self.text_encoder

    def modules(self) -> list[torch.nn.Module]:
        return [self.text_encoder, self.glyph_encoder, self.image_encoder]


def _image_processor_class():
    """SigLIP's PIL image processor: the same preprocessing, without torchvision (which the pack does not need,
    and which can be installed yet broken beside a CPU torch)."""
    try:
        from transformers import SiglipImageProcessorPil as cls
    except ImportError:  # transformers 4: the class is PIL-based already
        from transformers import SiglipImageProcessor as cls
    return cls


def siglip_processor(image_size: int):
    """SigLIP's preprocessing: bicubic resize to a square, scale to -1..1."""
    return _image_processor_class()(
        size={"height": image_size, "width": image_size}, resample=3, do_resize=True, do_rescale=True,
        do_normalize=True, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], do_convert_rgb=True,
    )


def glyph_tokenizer(folder: Path | None = None):
    """ByT5 reads bytes, so it needs no vocabulary; a folder adds the Glyph-ByT5 font and color tokens.

    Those extra tokens only matter for prompts that name them, so a folder that
    cannot be read falls back to plain bytes rather than stopping the run.
    """
    import logging

    from transformers import ByT5Tokenizer

    if folder is not None and Path(folder).is_dir():
        try:
            return ByT5Tokenizer.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - transformers raises many kinds here
            logging.getLogger(__name__).warning(
                "The ByT5 tokenizer in '%s' could not be read (%s); reading glyph text as plain bytes.", folder, exc
            )
    return ByT5Tokenizer()


def load_diffusers_folder(folder: str | Path, dtype: torch.dtype = torch.bfloat16) -> TextEncoders:
    import json

    from transformers import Qwen2_5_VLTextModel, SiglipVisionModel, T5EncoderModel

    folder = Path(folder)
    needed = ["text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "image_encoder", "feature_extractor"]
    missing = [name for name in needed if not (folder / name).is_dir()]
    if missing:
        raise ModelFileError(
            f"diffusers folder '{folder}' lacks {', '.join(missing)}/. A HunyuanVideo-1.5 image-to-video folder holds "
            f"{', '.join(needed)}."
        )
    tokenizer = load_tokenizer(folder / "tokenizer", "Qwen2.5-VL")
    text_encoder = Qwen2_5_VLTextModel.from_pretrained(folder / "text_encoder", dtype=dtype)
    glyph_encoder = T5EncoderModel.from_pretrained(folder / "text_encoder_2", dtype=dtype)
    image_encoder = SiglipVisionModel.from_pretrained(folder / "image_encoder", dtype=dtype)
    check_vocabulary(tokenizer, text_encoder.get_input_embeddings().num_embeddings, "Qwen2.5-VL",
                     f"'{folder.name}/text_encoder'")
    config = json.loads((folder / "feature_extractor" / "preprocessor_config.json").read_text())
    processor = _image_processor_class()(**{k: v for k, v in config.items() if not k.startswith("_")
                                            and k not in ("image_processor_type", "processor_class")})
    return TextEncoders(
        text_encoder.eval().requires_grad_(False), tokenizer, glyph_encoder.eval().requires_grad_(False),
        glyph_tokenizer(folder / "tokenizer_2"), image_encoder.eval().requires_grad_(False), processor,
        f"diffusers folder '{folder.name}'",
    )


def _read(path: Path, wanted_role: str, description: str, folder: str, dtype, skip=()) -> tuple[dict, dict]:
    role = files.detect_role(files.tensor_keys(path))
    if role != wanted_role:
        raise files.wrong_role_error(path, role, description, folder)
    return files.load_state_dict(path, dtype, skip), files.metadata_config(path)


def _qwen(path: Path, tokenizer, dtype):
    # Qwen's own vision tower and output head (about 1.6 B parameters) are not used: never read them.
    state, overrides = _read(path, "qwen_text_encoder", "the Qwen2.5-VL text encoder", "text_encoders", dtype,
                             skip=("visual.", "lm_head."))
    # Before building: a tokenizer with more tokens than the table would fail inside transformers first.
    table = state.get("model.embed_tokens.weight", state.get("embed_tokens.weight"))
    if table is not None:
        check_vocabulary(tokenizer, table.shape[0], "Qwen2.5-VL", f"'{path.name}'")
    return qwen_from_state(state, overrides, tokenizer.pad_token_id, f"'{path.name}'")


def qwen_from_state(state: dict, overrides: dict, pad_token_id, source: str):
    """Qwen2_5_VLTextModel from ComfyUI's file's tensors (sizes from their shapes)."""
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel

    # Only the language model is used: Qwen's own vision tower and output head stay unread.
    text = {k.removeprefix("model."): v for k, v in state.items() if not k.startswith(("visual.", "lm_head."))}
    if "embed_tokens.weight" not in text:
        raise ModelFileError(f"{source} has no embed_tokens.weight; it is incomplete or not Qwen2.5-VL.")
    vocab, hidden = text["embed_tokens.weight"].shape
    shapes = {"vocab_size": vocab, "hidden_size": hidden,
              "intermediate_size": text["layers.0.mlp.gate_proj.weight"].shape[0],
              "num_hidden_layers": files.block_count(text, "layers.")}
    meta = file_config.read_logged(overrides, QWEN_NAMES, source, shapes)
    values = {**QWEN_DEFAULTS, **meta}
    head_dim = file_config.head_dim(meta, QWEN_DEFAULTS["head_dim"], hidden, source)
    config = Qwen2_5_VLTextConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=shapes["intermediate_size"],
        num_hidden_layers=shapes["num_hidden_layers"], num_attention_heads=hidden // head_dim,
        num_key_value_heads=text["layers.0.self_attn.k_proj.weight"].shape[0] // head_dim,
        max_position_embeddings=values["max_position_embeddings"], rms_norm_eps=values["rms_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": values["rope_theta"],
                         "mrope_section": list(values["mrope_section"])},
        pad_token_id=pad_token_id,
    )
    with init_empty_weights():
        model = Qwen2_5_VLTextModel(config)
    _fill(model, text, source)
    return model


def _byt5(path: Path, dtype):
    state, overrides = _read(path, "byt5_text_encoder", "the ByT5 glyph encoder", "text_encoders", dtype)
    return byt5_from_state(state, overrides, f"'{path.name}'")


def byt5_from_state(state: dict, overrides: dict, source: str):
    """T5EncoderModel from ComfyUI's ByT5 file's tensors (``shared.*`` + ``encoder.*``)."""
    from transformers import T5Config, T5EncoderModel

    state = dict(state)
    if "shared.weight" not in state and "encoder.embed_tokens.weight" in state:
        state["shared.weight"] = state["encoder.embed_tokens.weight"]
    state.setdefault("encoder.embed_tokens.weight", state.get("shared.weight"))
    if state["shared.weight"] is None:
        raise ModelFileError(f"{source} has no token embedding (shared.weight); it is incomplete.")
    vocab, d_model = state["shared.weight"].shape
    attention = "encoder.block.0.layer.0.SelfAttention."
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in state
    inner = state[attention + "q.weight"].shape[0]
    shapes = {"vocab_size": vocab, "d_model": d_model, "num_layers": files.block_count(state, "encoder.block."),
              "d_ff": state["encoder.block.0.layer.1.DenseReluDense." + ("wi_0" if gated else "wi") + ".weight"].shape[0],
              "relative_attention_num_buckets": state[attention + "relative_attention_bias.weight"].shape[0]}
    meta = file_config.read_logged(overrides, BYT5_NAMES, source, shapes)
    values = {**BYT5_DEFAULTS, **meta}
    values["d_kv"] = file_config.head_dim({"num_attention_heads": meta.get("num_heads"), "head_dim": meta.get("d_kv")},
                               BYT5_DEFAULTS["d_kv"], inner, source)
    config = T5Config(
        vocab_size=vocab, d_model=d_model, d_kv=values["d_kv"], num_heads=inner // values["d_kv"], d_ff=shapes["d_ff"],
        num_layers=shapes["num_layers"], feed_forward_proj="gated-gelu" if gated else "relu",
        relative_attention_num_buckets=shapes["relative_attention_num_buckets"],
        is_encoder_decoder=False, use_cache=False, dropout_rate=0.0,
        layer_norm_epsilon=values["layer_norm_epsilon"],
        relative_attention_max_distance=values["relative_attention_max_distance"],
    )
    with init_empty_weights():
        model = T5EncoderModel(config)
    _fill(model, state, source)
    return model


def _siglip(path: Path, dtype):
    state, overrides = _read(path, "siglip_vision", "the SigLIP vision model", "clip_vision", dtype)
    return siglip_from_state(state, overrides, f"'{path.name}'")


def siglip_from_state(state: dict, overrides: dict, source: str):
    """SiglipVisionModel (and its input size) from ComfyUI's SigLIP file's tensors (``vision_model.*``)."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    vision = {k.removeprefix("vision_model."): v for k, v in state.items()}
    hidden, _, patch, _ = vision["embeddings.patch_embedding.weight"].shape
    side = int(round(vision["embeddings.position_embedding.weight"].shape[0] ** 0.5))
    shapes = {"hidden_size": hidden, "patch_size": patch,
              "intermediate_size": vision["encoder.layers.0.mlp.fc1.weight"].shape[0],
              "num_hidden_layers": files.block_count(vision, "encoder.layers.")}
    meta = file_config.read_logged(overrides, SIGLIP_NAMES, source, shapes)
    values = {**SIGLIP_DEFAULTS, **meta}
    head_dim = file_config.head_dim(meta, SIGLIP_DEFAULTS["head_dim"], hidden, source)
    config = SiglipVisionConfig(
        hidden_size=hidden, patch_size=patch,
        image_size=values.get("image_size", SIGLIP_IMAGE_SIZES.get((patch, side), side * patch)),
        intermediate_size=shapes["intermediate_size"], num_hidden_layers=shapes["num_hidden_layers"],
        num_attention_heads=hidden // head_dim, vision_use_head=any(k.startswith("head.") for k in vision),
        layer_norm_eps=values["layer_norm_eps"], hidden_act=values["hidden_act"],
    )
    with init_empty_weights():
        model = SiglipVisionModel(config)
    _fill(model, vision, source)
    return model, config.image_size


# Each file's config metadata, in transformers' names (and the older nesting of rope settings); sizes come from the
# shapes. Tencent ships these encoders with transformers' own config files, so there is no third dialect here.
QWEN_NAMES = (
    file_config.Name("vocab_size", derived=True), file_config.Name("hidden_size", derived=True),
    file_config.Name("intermediate_size", derived=True), file_config.Name("num_hidden_layers", derived=True),
    file_config.Name("num_attention_heads"), file_config.Name("head_dim"),
    file_config.Name("num_key_value_heads", derived=True),
    file_config.Name("rms_norm_eps", kind="float"), file_config.Name("rope_theta", kind="float"),
    file_config.Name("mrope_section", kind="ints"), file_config.Name("max_position_embeddings"),
)
BYT5_NAMES = (
    file_config.Name("vocab_size", derived=True), file_config.Name("d_model", ("hidden_size",), derived=True),
    file_config.Name("num_layers", ("num_hidden_layers",), derived=True),
    file_config.Name("d_ff", ("intermediate_size",), derived=True),
    file_config.Name("relative_attention_num_buckets", derived=True),
    file_config.Name("d_kv", ("head_dim",)), file_config.Name("num_heads", ("num_attention_heads",)),
    file_config.Name("layer_norm_epsilon", ("layer_norm_eps",), "float"),
    file_config.Name("relative_attention_max_distance"),
)
SIGLIP_NAMES = (
    file_config.Name("hidden_size", derived=True), file_config.Name("patch_size", derived=True),
    file_config.Name("intermediate_size", derived=True), file_config.Name("num_hidden_layers", derived=True),
    file_config.Name("num_attention_heads"), file_config.Name("head_dim"), file_config.Name("image_size"),
    file_config.Name("layer_norm_eps", kind="float"), file_config.Name("hidden_act", kind="str", choices=file_config.transformers_activations),
)


def _fill(model: torch.nn.Module, state: dict, source: str) -> None:
    """The file's names are the model's, with or without the model's outer prefix (``encoder.``, ``vision_model.``)."""
    files.assign_weights(model, lambda key: state.get(key, state.get(key.split(".", 1)[-1])), source)


def load_single_files(
    text_path: str | Path,
    vision_path: str | Path,
    glyph_path: str | Path,
    qwen_tokenizer_dir: str | Path,
    glyph_tokenizer_dir: str | Path | None = None,
    dtype: torch.dtype = torch.bfloat16,
) -> TextEncoders:
    text_path, vision_path, glyph_path = Path(text_path), Path(vision_path), Path(glyph_path)
    tokenizer = load_tokenizer(Path(qwen_tokenizer_dir), "Qwen2.5-VL")
    text_encoder = _qwen(text_path, tokenizer, dtype)
    glyph_encoder = _byt5(glyph_path, dtype)
    image_encoder, image_size = _siglip(vision_path, dtype)
    return TextEncoders(
        text_encoder, tokenizer, glyph_encoder, glyph_tokenizer(glyph_tokenizer_dir), image_encoder,
        siglip_processor(image_size), f"'{text_path.name}', '{vision_path.name}', '{glyph_path.name}'",
    )
