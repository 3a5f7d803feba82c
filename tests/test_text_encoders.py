"""Text encoders from ComfyUI's single files equal the diffusers folder's."""

import pytest
import torch
from conftest import run_node, te_choice, test_image

from hyv_pack.hunyuan_i2v.errors import ModelFileError
from hyv_pack.hunyuan_i2v.hunyuan_video_13b import conditioning
from hyv_pack.hunyuan_i2v.shared import images
from hyv_pack.nodes.loaders import FROM_FOLDER


def load(text_encoder, vision=FROM_FOLDER, text_encoder_2=FROM_FOLDER, fp8_storage=False):
    """The Load Text Encoders node (fp32, on the CPU)."""
    return run_node(
        "HunyuanI2VLoadTextEncoders", text_encoder=text_encoder, vision=vision, text_encoder_2=text_encoder_2,
        dtype="fp32", fp8_storage=fp8_storage, device="cpu",
    )


def embed(encoders, prompt="a red car drives along the road"):
    image, _ = test_image(32, 48, seed=5)
    start = images.prepare_start_image(image, width=48, height=32)
    return conditioning.encode_prompt(encoders, start.pil, prompt)


def test_single_files_give_the_folder_embeddings(comfy_models):
    (from_folder,) = run_node("HunyuanI2VLoadTextEncoders", **te_choice("tiny_v2"))
    (from_files,) = load(
        "tiny_llava_llama3.safetensors", "tiny_llava_llama3_vision.safetensors", "tiny_clip_l.safetensors"
    )
    a, b = embed(from_folder), embed(from_files)
    for name in ("image_tokens", "text_tokens", "text_mask", "pooled"):
        assert torch.allclose(getattr(a, name), getattr(b, name), atol=1e-6), name


def test_fp8_storage_halves_the_mllm_and_keeps_its_embeddings_close(comfy_models):
    from hyv_pack.hunyuan_i2v.shared import acceleration

    (full,) = load("[diffusers] tiny_v2", fp8_storage=False)
    (fp8,) = load("[diffusers] tiny_v2", fp8_storage=True)
    layer = fp8.mllm.model.language_model.layers[0].mlp.gate_proj
    assert layer.weight.dtype == torch.float8_e4m3fn
    # The embedding table and norms stay unquantized: a big share of a tiny model, about 6 % of the real one.
    assert acceleration.module_bytes([fp8.mllm]) < 0.8 * acceleration.module_bytes([full.mllm])
    a, b = embed(full), embed(fp8)
    scale = a.text_tokens.abs().max()
    assert (a.text_tokens - b.text_tokens).abs().max() < 0.15 * scale  # fp8 rounding, not another result
    assert torch.equal(a.pooled, b.pooled)  # CLIP-L is left as it was


def test_single_file_needs_its_partners(comfy_models):
    with pytest.raises(ModelFileError, match=r"language model, which also needs llava_llama3_vision.*vision slot"):
        load("tiny_llava_llama3.safetensors", FROM_FOLDER, FROM_FOLDER)
    with pytest.raises(ModelFileError, match=r"language model, which also needs clip_l.*text_encoder_2 slot"):
        load("tiny_llava_llama3.safetensors", "tiny_llava_llama3_vision.safetensors", FROM_FOLDER)


def test_clip_file_chosen_as_mllm(comfy_models):
    with pytest.raises(ModelFileError, match="CLIP text encoder.*needs the language model"):
        load("tiny_clip_l.safetensors", "tiny_llava_llama3_vision.safetensors", "tiny_clip_l.safetensors")


def test_folder_with_single_file_overrides_is_refused(comfy_models):
    with pytest.raises(ModelFileError, match=r"leave the other text encoder slots on '\(from the diffusers folder\)'"):
        load("[diffusers] tiny_v2", "tiny_llava_llama3_vision.safetensors", FROM_FOLDER)


def test_tokenizer_without_vocabulary_is_refused(comfy_models, tmp_path):
    """A tokenizer folder holding only tokenizer_config.json (e.g. a ComfyUI checkout without its
    Git LFS files) would load as a specials-only tokenizer: it is refused instead."""
    import shutil

    from hyv_pack.hunyuan_i2v.hunyuan_video_13b.text_encoder_files import load_single_files

    tokenizer = tmp_path / "llama_tokenizer"
    tokenizer.mkdir()
    shutil.copy(comfy_models / "diffusers" / "tiny_v2" / "tokenizer" / "tokenizer_config.json", tokenizer)
    with pytest.raises(ModelFileError, match=r"Llama-3 tokenizer is missing.*tokenizer.json"):
        load_single_files(
            comfy_models / "text_encoders" / "tiny_llava_llama3.safetensors",
            comfy_models / "clip_vision" / "tiny_llava_llama3_vision.safetensors",
            comfy_models / "text_encoders" / "tiny_clip_l.safetensors",
            tokenizer, comfy_models / "diffusers" / "tiny_v2" / "tokenizer_2", torch.float32,
        )


def test_tokenizer_of_another_model_is_refused(comfy_models, tmp_path):
    from safetensors.torch import load_file, save_file

    from hyv_pack.hunyuan_i2v.hunyuan_video_13b.text_encoder_files import load_single_files

    state = load_file(str(comfy_models / "text_encoders" / "tiny_llava_llama3.safetensors"))
    state["model.embed_tokens.weight"] = state["model.embed_tokens.weight"][:50].clone()
    save_file(state, str(tmp_path / "small_vocab.safetensors"), metadata={"config": '{"head_dim": 8}'})
    with pytest.raises(ModelFileError, match="do not belong together"):
        load_single_files(
            tmp_path / "small_vocab.safetensors",
            comfy_models / "clip_vision" / "tiny_llava_llama3_vision.safetensors",
            comfy_models / "text_encoders" / "tiny_clip_l.safetensors",
            comfy_models / "diffusers" / "tiny_v2" / "tokenizer", comfy_models / "diffusers" / "tiny_v2" / "tokenizer_2",
            torch.float32,
        )
