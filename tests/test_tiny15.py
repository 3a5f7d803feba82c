"""The tiny random HunyuanVideo-1.5 I2V folder loads in diffusers and runs end to end on CPU."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

try:
    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import demo
except ImportError:  # the pack's package layout is being reorganised: load the file itself
    _path = Path(__file__).resolve().parents[1] / "hunyuan_i2v" / "hunyuan_video_15" / "demo.py"
    _spec = importlib.util.spec_from_file_location("tiny15_demo", _path)
    demo = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(demo)

PROMPT = 'a sign that says "HELLO" in a red car'
NEGATIVE = "blurry, low quality"
NUM_FRAMES = 5
IMAGE_HW = (48, 64)  # snapped by target_size 64 to the 48x64 bucket


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    from diffusers import HunyuanVideo15ImageToVideoPipeline

    folder = demo.write_diffusers_folder(tmp_path_factory.mktemp("tiny15") / "hunyuan_video_15_i2v", seed=0)
    assert (folder / "model_index.json").is_file()
    pipe = HunyuanVideo15ImageToVideoPipeline.from_pretrained(folder, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def image():
    from PIL import Image

    array = np.random.default_rng(0).integers(0, 256, (*IMAGE_HW, 3), dtype=np.uint8)
    return Image.fromarray(array)


def run(pipe):
    """Run two steps, counting transformer calls (two per step with CFG, one without)."""
    calls = []
    forward = pipe.transformer.forward

    def counting(*args, **kwargs):
        calls.append(kwargs["encoder_hidden_states"].shape)
        return forward(*args, **kwargs)

    pipe.transformer.forward = counting
    try:
        video = pipe(
            image=image(), prompt=PROMPT, negative_prompt=NEGATIVE, num_frames=NUM_FRAMES, num_inference_steps=2,
            output_type="pt", generator=torch.Generator().manual_seed(0),
        ).frames
    finally:
        del pipe.transformer.forward
    return video, calls


def test_components_agree(pipe):
    config = pipe.transformer.config
    assert config.text_embed_dim == pipe.text_encoder.config.hidden_size
    assert config.text_embed_2_dim == pipe.text_encoder_2.config.d_model
    assert config.image_embed_dim == pipe.image_encoder.config.hidden_size
    assert config.in_channels == 2 * pipe.vae.config.latent_channels + 1
    assert config.out_channels == pipe.vae.config.latent_channels == demo.LATENT_CHANNELS
    assert sum(config.rope_axes_dim) == config.attention_head_dim
    assert config.target_size == demo.TARGET_SIZE and config.task_type == "i2v"
    assert pipe.vae_scale_factor_spatial == 16 and pipe.vae_scale_factor_temporal == 4
    assert pipe.text_encoder.config.vocab_size == len(pipe.tokenizer)
    assert pipe.text_encoder_2.config.vocab_size >= len(pipe.tokenizer_2)
    assert pipe.video_processor.calculate_default_height_width(*IMAGE_HW, config.target_size) == IMAGE_HW


def test_tokenizer_matches_the_pipeline_crop(pipe):
    assert pipe.system_message == demo.SYSTEM_MESSAGE
    # the chat template puts exactly the pipeline's hard-coded 108 tokens before the user's text
    from hyv_pack.hunyuan_i2v.hunyuan_video_15.conditioning import system_prefix_length

    assert system_prefix_length(pipe.tokenizer) == pipe.prompt_template_encode_start_idx
    rendered = pipe.tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], add_generation_prompt=True,
        tokenize=False,
    )
    assert rendered == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    embeds, mask, embeds_2, mask_2 = pipe.encode_prompt(PROMPT, device="cpu")
    assert embeds.shape == (1, pipe.tokenizer_max_length, demo.TEXT_HIDDEN)
    assert embeds_2.shape == (1, pipe.tokenizer_2_max_length, demo.BYT5_HIDDEN)
    assert mask_2.sum() == len('Text "HELLO". ') + 1  # the quoted text reaches ByT5, in bytes, plus </s>
    user_ids = pipe.tokenizer(PROMPT + "<|im_end|>\n<|im_start|>assistant\n")["input_ids"]
    assert mask.sum() == len(user_ids)  # the crop keeps the user's text and the generation prompt, nothing else


def test_runs_with_classifier_free_guidance(pipe):
    assert pipe.guider.guidance_scale == demo.GUIDANCE_SCALE
    video, calls = run(pipe)
    assert video.shape == (1, NUM_FRAMES, 3, *IMAGE_HW)
    assert torch.isfinite(video).all() and video.std() > 0.01
    assert len(calls) == 4  # conditional and unconditional, two steps


def test_runs_without_guidance(pipe):
    guider = pipe.guider
    pipe.guider = guider.new(guidance_scale=1.0)  # CFG off: one conditional pass per step
    try:
        video, calls = run(pipe)
    finally:
        pipe.guider = guider
    assert video.shape == (1, NUM_FRAMES, 3, *IMAGE_HW)
    assert torch.isfinite(video).all()
    assert len(calls) == 2


def test_weights_follow_the_seed():
    first, again, other = (demo.build_components(seed)["transformer"].state_dict() for seed in (0, 0, 1))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["x_embedder.proj.weight"], other["x_embedder.proj.weight"])


def test_meanflow_variant_runs(tmp_path):
    from diffusers import HunyuanVideo15ImageToVideoPipeline

    pipe = HunyuanVideo15ImageToVideoPipeline(**demo.build_components(0, use_meanflow=True))
    pipe.set_progress_bar_config(disable=True)
    pipe.guider = pipe.guider.new(guidance_scale=1.0)
    assert pipe.transformer.config.use_meanflow
    video = pipe(image=image(), prompt=PROMPT, num_frames=NUM_FRAMES, num_inference_steps=2, output_type="pt").frames
    assert video.shape == (1, NUM_FRAMES, 3, *IMAGE_HW) and torch.isfinite(video).all()
