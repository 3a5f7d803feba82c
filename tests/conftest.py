"""Load the pack the way ComfyUI does: as a package from its folder path.

Tests import everything through ``hyv_pack`` (the repository root loaded as a
package), so node modules and engine modules are the same objects the nodes
use, and relative imports are exercised on every run.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACK_NAME = "hyv_pack"


def load_pack(name: str = PACK_NAME):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


load_pack()


# ---------------------------------------------------------------- tiny models on disk
import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

TRANSFORMER_METADATA = {"rope_axes_dim": [2, 4, 4]}  # what a tiny model's shapes cannot tell
VAE_METADATA = {"norm_num_groups": 4}


def save_file_with_config(state, path, config):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"config": json.dumps(config)})


@pytest.fixture(scope="session")
def models_root(tmp_path_factory):
    """A ComfyUI-style models folder: tiny v1 and v2 models in both layouts.

    diffusers/tiny_v1, diffusers/tiny_v2: the community conversion's layout.
    diffusion_models/tiny_v{1,2}.safetensors: transformer in original names.
    vae/tiny_vae.safetensors: the VAE as a single file.
    """
    from diffusers import AutoencoderKLHunyuanVideo, HunyuanVideoTransformer3DModel

    from hyv_pack.hunyuan_i2v.hunyuan_video_13b import demo
    from original_layout import to_original

    root = tmp_path_factory.mktemp("models")
    for sub in ("diffusers", "diffusion_models", "vae", "text_encoders", "clip_vision"):
        (root / sub).mkdir()
    for version, variant in (("v1", "latent_concat"), ("v2", "token_replace")):
        folder = demo.write_diffusers_folder(root / "diffusers" / f"tiny_{version}", variant, seed=1)
        transformer = HunyuanVideoTransformer3DModel.from_pretrained(folder / "transformer")
        save_file_with_config(
            to_original(transformer.state_dict()), root / "diffusion_models" / f"tiny_{version}.safetensors",
            TRANSFORMER_METADATA,
        )
    vae = AutoencoderKLHunyuanVideo.from_pretrained(root / "diffusers" / "tiny_v2" / "vae")
    save_file_with_config(vae.state_dict(), root / "vae" / "tiny_vae.safetensors", VAE_METADATA)
    write_comfy_text_encoder_files(root / "diffusers" / "tiny_v2", root)
    return root


def write_comfy_text_encoder_files(folder, root):
    """The tiny text encoders as ComfyUI's repackaged single files (Hugging Face names).

    text_encoders/tiny_llava_llama3.safetensors: the language part (model.*), no lm_head;
    clip_vision/tiny_llava_llama3_vision.safetensors: vision_model.* + multi_modal_projector.*;
    text_encoders/tiny_clip_l.safetensors: text_model.*.
    """
    from transformers import CLIPTextModel, LlavaForConditionalGeneration

    llava = LlavaForConditionalGeneration.from_pretrained(folder / "text_encoder")
    text, vision = {}, {}
    for key, value in llava.state_dict().items():
        if key.startswith("lm_head."):
            continue
        if "multi_modal_projector." in key:
            vision["multi_modal_projector." + key.split("multi_modal_projector.", 1)[1]] = value
        elif "vision_tower." in key:
            inner = key.split("vision_tower.", 1)[1].removeprefix("vision_model.")
            vision["vision_model." + inner] = value
        else:
            text["model." + key.split("language_model.", 1)[1].removeprefix("model.")] = value
    save_file_with_config(text, root / "text_encoders" / "tiny_llava_llama3.safetensors", {"head_dim": 8})
    save_file_with_config(
        vision, root / "clip_vision" / "tiny_llava_llama3_vision.safetensors", {"num_attention_heads": 2}
    )
    clip = CLIPTextModel.from_pretrained(folder / "text_encoder_2")
    clip_state = {("text_model." + k.removeprefix("text_model.")): v for k, v in clip.state_dict().items()}
    save_file_with_config(clip_state, root / "text_encoders" / "tiny_clip_l.safetensors", {"num_attention_heads": 2})


def run_node(name, **inputs):
    """Call a node by keyword, as ComfyUI does."""
    from hyv_pack import NODE_CLASS_MAPPINGS

    cls = NODE_CLASS_MAPPINGS[name]
    return getattr(cls(), cls.FUNCTION)(**inputs)


def te_choice(folder):
    """Load Text Encoders inputs for a diffusers folder (fp32, on the CPU)."""
    from hyv_pack.nodes.loaders import FROM_FOLDER

    return dict(text_encoder=f"[diffusers] {folder}", vision=FROM_FOLDER, text_encoder_2=FROM_FOLDER, dtype="fp32",
                fp8_storage=False, device="cpu")


def transformer_inputs(model_name, **overrides):
    """Load Transformer inputs: fp32, native attention, model offload, unless overridden."""
    return dict(model_name=model_name, weight_dtype="fp32", fp8_storage=False, attention="native (PyTorch SDPA)",
                offload_mode="model", variant="auto") | overrides


def sample_inputs(model, conditioning, **overrides):
    """Sample node inputs: every setting at the model's default (0) unless overridden."""
    return dict(model=model, conditioning=conditioning, seed=0, steps=0, frames=121, flow_shift=0.0,
                embedded_guidance=0.0, cfg_scale=0.0, i2v_stability=True, cache="off", cache_threshold=0.1) | overrides


def encode_inputs(text_encoders, vae, image, **overrides):
    """Encode node inputs: empty prompts, 720p from the image's aspect, unless overridden."""
    return dict(text_encoders=text_encoders, vae=vae, image=image, prompt="", negative_prompt="", resolution="720p",
                width=0, height=0) | overrides


@pytest.fixture()
def comfy_models(models_root, monkeypatch):
    """Point the pack's model folders (outside ComfyUI) at the tiny models."""
    monkeypatch.setenv("HUNYUAN_I2V_MODELS", str(models_root))
    return models_root


def test_image(height=48, width=64, seed=0, channels=3):
    """A ComfyUI IMAGE with uint8-exact values, and the same picture as PIL."""
    from PIL import Image

    array = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    tensor = torch.from_numpy(array.astype(np.float32) / 255.0).unsqueeze(0)
    return tensor, Image.fromarray(array.squeeze(-1) if channels == 1 else array)


test_image.__test__ = False  # a helper, not a test


# ---------------------------------------------------------------- tiny HunyuanVideo-1.5 on disk
TRANSFORMER15_METADATA = {"rope_axes_dim": [4, 8, 8]}  # what the tiny 1.5 model's shapes cannot tell


@pytest.fixture(scope="session")
def models15_root(tmp_path_factory):
    """A ComfyUI-style models folder with a tiny HunyuanVideo-1.5 in every layout users have.

    diffusers/tiny15 (and tiny15_meanflow): the diffusers layout.
    diffusion_models/tiny15_comfy.safetensors: original names, fused q|k|v (ComfyUI's repackaged files);
    diffusion_models/tiny15_tencent.safetensors: original names, split q, k, v (Tencent's release).
    vae/tiny15_vae.safetensors: original VAE names.
    text_encoders/tiny_qwen25.safetensors (model.* + visual.* + lm_head), text_encoders/tiny_byt5.safetensors
    (shared.* + encoder.*), clip_vision/tiny_siglip.safetensors (vision_model.*).
    """
    from diffusers import AutoencoderKLHunyuanVideo15, HunyuanVideo15Transformer3DModel
    from transformers import Qwen2_5_VLTextModel, SiglipVisionModel, T5EncoderModel

    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import demo
    from original_layout_15 import transformer_to_original, vae_to_original

    root = tmp_path_factory.mktemp("models15")
    for sub in ("diffusers", "diffusion_models", "vae", "text_encoders", "clip_vision", "loras"):
        (root / sub).mkdir()
    folder = demo.write_diffusers_folder(root / "diffusers" / "tiny15", seed=1)
    demo.write_diffusers_folder(root / "diffusers" / "tiny15_meanflow", seed=2, use_meanflow=True)
    transformer = HunyuanVideo15Transformer3DModel.from_pretrained(folder / "transformer")
    for name, fused in (("tiny15_comfy", True), ("tiny15_tencent", False)):
        save_file_with_config(
            transformer_to_original(transformer.state_dict(), fused), root / "diffusion_models" / f"{name}.safetensors",
            TRANSFORMER15_METADATA,
        )
    vae = AutoencoderKLHunyuanVideo15.from_pretrained(folder / "vae")
    save_file_with_config(vae_to_original(vae.state_dict()), root / "vae" / "tiny15_vae.safetensors", {})
    qwen = Qwen2_5_VLTextModel.from_pretrained(folder / "text_encoder")
    text = {"model." + k: v for k, v in qwen.state_dict().items()}
    # ComfyUI's file also holds Qwen's own vision tower and output head, which the pack must skip.
    text["visual.patch_embed.proj.weight"] = torch.zeros(4, 3, 2, 14, 14)
    text["lm_head.weight"] = qwen.state_dict()["embed_tokens.weight"].clone()
    qwen_config = qwen.config
    save_file_with_config(text, root / "text_encoders" / "tiny_qwen25.safetensors", {
        "head_dim": qwen_config.hidden_size // qwen_config.num_attention_heads,
        "mrope_section": list(qwen_config.rope_parameters["mrope_section"]),
        "rope_theta": qwen_config.rope_parameters["rope_theta"], "max_position_embeddings": 2048,
    })
    t5 = T5EncoderModel.from_pretrained(folder / "text_encoder_2")
    glyph = {k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"}
    save_file_with_config(glyph, root / "text_encoders" / "tiny_byt5.safetensors", {
        "d_kv": t5.config.d_kv, "relative_attention_max_distance": t5.config.relative_attention_max_distance,
    })
    siglip = SiglipVisionModel.from_pretrained(folder / "image_encoder")
    vision = {"vision_model." + k: v for k, v in siglip.state_dict().items()}
    save_file_with_config(vision, root / "clip_vision" / "tiny_siglip.safetensors", {
        "num_attention_heads": siglip.config.num_attention_heads,
    })
    write_tiny_super_resolution(root)
    return root


def tiny_sr_transformer(seed=7):
    """The tiny 1.5 transformer as the super-resolution release has it: 3 C + 2 input channels, MeanFlow."""
    from diffusers import HunyuanVideo15Transformer3DModel

    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import demo

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return HunyuanVideo15Transformer3DModel(
            in_channels=3 * demo.LATENT_CHANNELS + 2, out_channels=demo.LATENT_CHANNELS,
            num_attention_heads=demo.TRANSFORMER_HEADS, attention_head_dim=demo.TRANSFORMER_HEAD_DIM,
            num_layers=demo.TRANSFORMER_LAYERS, num_refiner_layers=demo.REFINER_LAYERS, mlp_ratio=4.0, patch_size=1,
            patch_size_t=1, qk_norm="rms_norm", text_embed_dim=demo.TEXT_HIDDEN, text_embed_2_dim=demo.BYT5_HIDDEN,
            image_embed_dim=demo.IMAGE_HIDDEN, rope_theta=256.0, rope_axes_dim=demo.ROPE_AXES_DIM,
            target_size=demo.TARGET_SIZE, use_meanflow=True,
        ).eval()


def write_tiny_super_resolution(root):
    """diffusion_models/tiny15_720p_sr_comfy.safetensors (ComfyUI's fused layout and its model_type header),
    diffusion_models/tiny15_sr_tencent.safetensors (Tencent's split layout, no release named) and
    latent_upscale_models/tiny_upsampler_{720p,1080p}.safetensors."""
    from safetensors.torch import save_file
    from test_upsampler import original_state

    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import demo
    from original_layout_15 import transformer_to_original

    state = tiny_sr_transformer().state_dict()
    config = json.dumps(TRANSFORMER15_METADATA)
    save_file(transformer_to_original(state, True), root / "diffusion_models" / "tiny15_720p_sr_comfy.safetensors",
              metadata={"config": config, "model_type": "hunyuanvideo1.5_720p_sr_distilled"})
    save_file_with_config(transformer_to_original(state, False), root / "diffusion_models" / "tiny15_sr_tencent.safetensors",
                          TRANSFORMER15_METADATA)
    (root / "latent_upscale_models").mkdir(exist_ok=True)
    for kind in ("720p", "1080p"):
        save_file_with_config(original_state(kind, 3, channels=demo.LATENT_CHANNELS),
                              root / "latent_upscale_models" / f"tiny_upsampler_{kind}.safetensors", {})


@pytest.fixture()
def comfy_models15(models15_root, monkeypatch):
    monkeypatch.setenv("HUNYUAN_I2V_MODELS", str(models15_root))
    return models15_root
