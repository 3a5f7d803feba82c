"""Each kind of bad input gets an error that names the problem and the fix."""

import shutil

import pytest
import torch
from conftest import encode_inputs, run_node, sample_inputs, te_choice, test_image, transformer_inputs

from hyv_pack.hunyuan_i2v.errors import MissingModelError, ModelFileError, UserInputError


def load_model(name):
    return run_node("HunyuanI2VLoadTransformer", **transformer_inputs(name))


@pytest.fixture()
def encoded(comfy_models):
    (vae,) = run_node("HunyuanI2VLoadVAE", vae_name="[diffusers] tiny_v2", dtype="fp32")
    (encoders,) = run_node("HunyuanI2VLoadTextEncoders", **te_choice("tiny_v2"))
    return encoders, vae


@pytest.fixture()
def scratch_folder(comfy_models):
    """A copy of tiny_v2 to damage; removed afterwards so other tests see clean folders."""
    made = []

    def make(name):
        folder = comfy_models / "diffusers" / name
        shutil.copytree(comfy_models / "diffusers" / "tiny_v2", folder)
        made.append(folder)
        return folder

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


def test_missing_file(comfy_models):
    with pytest.raises(MissingModelError, match=r"not found in the 'diffusion_models' folders.*models/diffusion_models"):
        load_model("hunyuan_video_image_to_video_720p_bf16.safetensors")


def test_vae_chosen_as_transformer(comfy_models):
    shutil.copy(comfy_models / "vae" / "tiny_vae.safetensors", comfy_models / "diffusion_models" / "wrong.safetensors")
    with pytest.raises(ModelFileError, match=r"is the HunyuanVideo-I2V \(13 B\) VAE \(vae\), but this loader needs the transformer of HunyuanVideo-I2V"):
        load_model("wrong.safetensors")


def test_transformer_chosen_as_vae(comfy_models):
    shutil.copy(comfy_models / "diffusion_models" / "tiny_v2.safetensors", comfy_models / "vae" / "wrong_vae.safetensors")
    with pytest.raises(ModelFileError, match=r"HunyuanVideo-I2V \(13 B\) transformer.*needs the VAE of HunyuanVideo"):
        run_node("HunyuanI2VLoadVAE", vae_name="wrong_vae.safetensors", dtype="fp32")


def test_other_family_checkpoint(comfy_models):
    from safetensors.torch import save_file

    flux_like = {"double_blocks.0.img_attn.qkv.weight": torch.zeros(2, 2), "img_in.weight": torch.zeros(2, 2)}
    save_file(flux_like, str(comfy_models / "diffusion_models" / "flux_like.safetensors"))
    with pytest.raises(ModelFileError, match="Flux-family diffusion model, not HunyuanVideo"):
        load_model("flux_like.safetensors")


def test_text_to_video_only_folder(scratch_folder):
    import json

    folder = scratch_folder("t2v_folder")
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "HunyuanVideoPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFileError, match=r"text-to-video .*\(HunyuanVideoPipeline\).*naming HunyuanVideoImageToVideoPipeline"):
        load_model("[diffusers] t2v_folder")
    # A folder whose transformer config lacks the image condition type is text-to-video too.
    index["_class_name"] = "HunyuanVideoImageToVideoPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    config = json.loads((folder / "transformer" / "config.json").read_text())
    config["image_condition_type"] = None
    (folder / "transformer" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="text-to-video HunyuanVideo"):
        load_model("[diffusers] t2v_folder")


def test_truncated_safetensors(comfy_models):
    data = (comfy_models / "diffusion_models" / "tiny_v2.safetensors").read_bytes()
    (comfy_models / "diffusion_models" / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"is truncated.*Download 'cut.safetensors' again"):
        load_model("cut.safetensors")


def test_not_a_safetensors_file(comfy_models):
    (comfy_models / "diffusion_models" / "junk.safetensors").write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    with pytest.raises(ModelFileError, match="not a valid safetensors file"):
        load_model("junk.safetensors")


def test_frames_not_4n_plus_1(comfy_models, encoded):
    encoders, vae = encoded
    model, _ = load_model("[diffusers] tiny_v2")
    image, _ = test_image(32, 32)
    cond, _ = run_node("HunyuanI2VEncode", **encode_inputs(encoders, vae, image, prompt="x", resolution="360p",
                                                           width=32, height=32))
    with pytest.raises(UserInputError, match=r"frames must be 4n\+1.*got 10.*Use 9 or 13"):
        run_node("HunyuanI2VSample", **sample_inputs(
            model, cond, seed=0, steps=2, frames=10, flow_shift=7.0, embedded_guidance=6.0, cfg_scale=1.0,
        ))


def test_size_off_the_grid(encoded):
    encoders, vae = encoded
    image, _ = test_image(32, 32)
    with pytest.raises(UserInputError, match=r"width 70 is not a multiple of 16.*Use 64 or 80"):
        run_node("HunyuanI2VEncode", **encode_inputs(encoders, vae, image, prompt="x", resolution="360p",
                                                     width=70, height=32))


def test_image_batch_of_wrong_size(encoded):
    encoders, vae = encoded
    image = torch.rand(2, 32, 32, 3)
    with pytest.raises(UserInputError, match=r"batch of 2 images.*ImageFromBatch"):
        run_node("HunyuanI2VEncode", **encode_inputs(encoders, vae, image, prompt="x", resolution="360p",
                                                     width=32, height=32))


def test_image_with_wrong_channel_count(encoded):
    encoders, vae = encoded
    with pytest.raises(UserInputError, match="2 channels"):
        run_node("HunyuanI2VEncode", **encode_inputs(encoders, vae, torch.rand(1, 32, 32, 2), prompt="x",
                                                     resolution="360p", width=32, height=32))


def test_missing_tokenizer(scratch_folder):
    folder = scratch_folder("no_tokenizer")
    shutil.rmtree(folder / "tokenizer")
    with pytest.raises(ModelFileError, match=r"lacks tokenizer/"):
        run_node("HunyuanI2VLoadTextEncoders", **te_choice("no_tokenizer"))
    (folder / "tokenizer").mkdir()
    with pytest.raises(ModelFileError, match=r"Llama-3 tokenizer is missing"):
        run_node("HunyuanI2VLoadTextEncoders", **te_choice("no_tokenizer"))


def test_cfg_without_negative_prompt(comfy_models, encoded):
    encoders, vae = encoded
    model, _ = load_model("[diffusers] tiny_v1")
    image, _ = test_image(32, 32)
    cond, _ = run_node("HunyuanI2VEncode", **encode_inputs(encoders, vae, image, prompt="x", resolution="360p",
                                                           width=32, height=32))
    with pytest.raises(UserInputError, match="needs a negative prompt"):
        run_node("HunyuanI2VSample", **sample_inputs(
            model, cond, seed=0, steps=2, frames=5, flow_shift=7.0, embedded_guidance=6.0, cfg_scale=3.0,
        ))
