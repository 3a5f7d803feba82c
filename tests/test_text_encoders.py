"""Text encoders from ComfyUI's single files equal the diffusers folder's."""

import pytest
import torch
from conftest import test_image

from hyv_pack import NODE_CLASS_MAPPINGS as NODES
from hyv_pack.hunyuan_i2v import conditioning, images
from hyv_pack.hunyuan_i2v.errors import ModelFileError
from hyv_pack.nodes.loaders import FROM_FOLDER

LOADER = NODES["HunyuanI2VLoadTextEncoders"]


def embed(encoders, prompt="a red car drives along the road"):
    image, _ = test_image(32, 48, seed=5)
    start = images.prepare_start_image(image, width=48, height=32)
    return conditioning.encode_prompt(encoders, start.pil, prompt)


def test_single_files_give_the_folder_embeddings(comfy_models):
    (from_folder,) = LOADER().load("[diffusers] tiny_v2", FROM_FOLDER, FROM_FOLDER, "fp32", "cpu")
    (from_files,) = LOADER().load(
        "tiny_llava_llama3.safetensors", "tiny_llava_llama3_vision.safetensors", "tiny_clip_l.safetensors", "fp32", "cpu"
    )
    a, b = embed(from_folder), embed(from_files)
    for name in ("image_tokens", "text_tokens", "text_mask", "pooled"):
        assert torch.allclose(getattr(a, name), getattr(b, name), atol=1e-6), name


def test_single_file_needs_its_partners(comfy_models):
    with pytest.raises(ModelFileError, match="vision and clip must be single files"):
        LOADER().load("tiny_llava_llama3.safetensors", FROM_FOLDER, FROM_FOLDER, "fp32", "cpu")


def test_clip_file_chosen_as_mllm(comfy_models):
    with pytest.raises(ModelFileError, match="CLIP text encoder.*needs the llava-llama-3 text encoder"):
        LOADER().load(
            "tiny_clip_l.safetensors", "tiny_llava_llama3_vision.safetensors", "tiny_clip_l.safetensors", "fp32", "cpu"
        )


def test_folder_with_single_file_overrides_is_refused(comfy_models):
    with pytest.raises(ModelFileError, match="set vision and clip to"):
        LOADER().load("[diffusers] tiny_v2", "tiny_llava_llama3_vision.safetensors", FROM_FOLDER, "fp32", "cpu")
