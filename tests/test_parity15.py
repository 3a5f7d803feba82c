"""HunyuanVideo-1.5: the nodes, called in graph order, give the frames of diffusers' reference pipeline."""

import pytest
import torch
from conftest import run_node, sample_inputs, te_choice, test_image, transformer_inputs

from hyv_pack.hunyuan_i2v.hunyuan_video_15 import conditioning
from hyv_pack.nodes.loaders import FROM_FOLDER

PROMPT = 'a cat walks past a sign that says "HELLO"'
NEGATIVE = "blurry, static"
SEED, STEPS, FRAMES = 42, 3, 9
WIDTH, HEIGHT = 64, 48  # what the tiny model's target size (64) picks for a 4:3 image


def run_graph(model_choice, vae_choice, te_inputs, image, *, cfg, negative, prompt=PROMPT, shift=5.0, variant="auto"):
    model, info = run_node("HunyuanI2VLoadTransformer", **transformer_inputs(model_choice, variant=variant))
    (vae,) = run_node("HunyuanI2VLoadVAE", vae_name=vae_choice, dtype="fp32")
    (encoders,) = run_node("HunyuanI2VLoadTextEncoders", **te_inputs)
    cond, _ = run_node(
        "HunyuanI2VEncode", text_encoders=encoders, vae=vae, image=image, prompt=prompt, negative_prompt=negative,
        resolution="480p", width=WIDTH, height=HEIGHT,
    )
    (latent,) = run_node("HunyuanI2VSample", **sample_inputs(
        model, cond, seed=SEED, steps=STEPS, frames=FRAMES, flow_shift=shift, cfg_scale=cfg,
    ))
    frames, _ = run_node("HunyuanI2VDecode", vae=vae, latent=latent, tiling=True, tile_size=256, fps=24.0)
    return frames, info, encoders


def reference_frames(folder, pil, encoders, *, cfg, negative, prompt=PROMPT, shift=5.0):
    from diffusers import FlowMatchEulerDiscreteScheduler, HunyuanVideo15ImageToVideoPipeline

    pipe = HunyuanVideo15ImageToVideoPipeline.from_pretrained(str(folder), dtype=torch.float32)
    pipe.vae.enable_tiling()
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    pipe.guider = pipe.guider.new(guidance_scale=cfg)
    # The pipeline hard-codes the real tokenizer's system part (108 tokens); give it ours, measured.
    pipe.prompt_template_encode_start_idx = conditioning.system_prefix_length(encoders.tokenizer)
    out = pipe(
        image=pil, prompt=prompt, negative_prompt=negative, num_frames=FRAMES, num_inference_steps=STEPS,
        generator=torch.Generator("cpu").manual_seed(SEED), output_type="pt",
    ).frames
    return out[0].permute(0, 2, 3, 1)  # [F, C, H, W] -> [F, H, W, C]


@pytest.mark.parametrize(
    "cfg,negative,prompt",
    [(6.0, NEGATIVE, PROMPT), (1.0, "", PROMPT), (6.0, "", "a cat walks on the grass")],
    ids=["cfg-glyph", "no-cfg-glyph", "cfg-no-glyph-empty-negative"],
)
def test_nodes_match_diffusers_pipeline(comfy_models15, cfg, negative, prompt):
    image, pil = test_image(HEIGHT, WIDTH)
    frames, info, encoders = run_graph(
        "[diffusers] tiny15", "[diffusers] tiny15", te_choice("tiny15"), image, cfg=cfg, negative=negative,
        prompt=prompt,
    )
    reference = reference_frames(comfy_models15 / "diffusers" / "tiny15", pil, encoders, cfg=cfg,
                                 negative=negative or None, prompt=prompt)
    assert frames.shape == reference.shape == (FRAMES, HEIGHT, WIDTH, 3)
    assert (frames - reference).abs().max().item() <= 1e-4
    assert "HunyuanVideo-1.5" in info


def test_meanflow_release_matches_pipeline(comfy_models15):
    image, pil = test_image(HEIGHT, WIDTH, seed=5)
    frames, info, encoders = run_graph(
        "[diffusers] tiny15_meanflow", "[diffusers] tiny15_meanflow", te_choice("tiny15_meanflow"), image,
        cfg=1.0, negative="", shift=7.0,
    )
    reference = reference_frames(comfy_models15 / "diffusers" / "tiny15_meanflow", pil, encoders, cfg=1.0,
                                 negative=None, shift=7.0)
    assert (frames - reference).abs().max().item() <= 1e-4
    assert "step-distilled" in info


SINGLE_FILE_ENCODERS = dict(
    text_encoder="tiny_qwen25.safetensors", vision="tiny_siglip.safetensors", text_encoder_2="tiny_byt5.safetensors",
    dtype="fp32", fp8_storage=False, device="cpu",
)


@pytest.mark.parametrize("transformer_file", ["tiny15_comfy.safetensors", "tiny15_tencent.safetensors"])
def test_single_files_match_diffusers_folder(comfy_models15, transformer_file):
    """ComfyUI's and Tencent's layouts, the original-name VAE and the three encoder files give the folder's video."""
    image, _ = test_image(HEIGHT, WIDTH, seed=3)
    from_folder, _, _ = run_graph("[diffusers] tiny15", "[diffusers] tiny15", te_choice("tiny15"), image,
                                  cfg=6.0, negative=NEGATIVE)
    from_files, info, _ = run_graph(transformer_file, "tiny15_vae.safetensors", SINGLE_FILE_ENCODERS, image,
                                    cfg=6.0, negative=NEGATIVE)
    assert (from_folder - from_files).abs().max().item() <= 1e-5
    assert "resolution not stored" in info and "cannot tell" in info


def test_folder_and_files_can_be_mixed_only_as_whole_sets(comfy_models15):
    from hyv_pack.hunyuan_i2v.errors import ModelFileError

    with pytest.raises(ModelFileError, match="holds its own text encoders"):
        run_node("HunyuanI2VLoadTextEncoders", **(te_choice("tiny15") | {"vision": "tiny_siglip.safetensors"}))
    with pytest.raises(ModelFileError, match="also needs sigclip"):
        run_node("HunyuanI2VLoadTextEncoders", **(SINGLE_FILE_ENCODERS | {"vision": FROM_FOLDER}))
