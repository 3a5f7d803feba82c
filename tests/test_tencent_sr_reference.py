"""Tencent's own SR pipeline on tiny weights: the harness records what the pack's SR stage must reproduce.

Opt-in: skipped unless TENCENT_HV15_PATH names a work tree of Tencent-Hunyuan/HunyuanVideo-1.5 (see
tests/tencent_sr_reference.py). Decoding 720p on a CPU takes minutes: TENCENT_SR_DECODE=1 adds that test.
These tests check Tencent's behaviour as recorded (the facts in /work/notes/tencent_sr_facts.md), so a change in
Tencent's code or a broken capture fails here, not in the pack's parity tests.
"""

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tencent_sr_reference as ref

pytestmark = pytest.mark.skipif(ref.tencent_path() is None, reason=f"set {ref.ENV} to run Tencent's SR reference")

PROMPT = 'a sign that says "HELLO" in a red car'
SEED = 7
LQ_THRESHOLD = 700.0  # Tencent: lq channels zeroed once t < 1000 * 0.7


def shifted_timesteps(steps, shift=2.0):
    sigmas = torch.linspace(1, 0, steps + 1)
    sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
    return sigmas, sigmas[:-1] * 1000


def start_image(width, height):
    array = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    from PIL import Image

    return Image.fromarray(array)


def lowres_latent(frames, height, width, seed=1):
    # magnitudes of a real scaled latent (about unit variance)
    return torch.randn(1, 32, frames, height // 16, width // 16, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return ref.write_tiny_tencent_sr_release(tmp_path_factory.mktemp("tencent_sr"), seed=0)


@pytest.fixture(scope="module")
def pipe_720p(release):
    return ref.load_tencent_sr_pipeline(release, "720p")


@pytest.fixture(scope="module")
def run_720p(release, pipe_720p):
    return ref.run_tencent_sr(release, lowres_latent(2, 480, 848), start_image(848, 480), PROMPT, seed=SEED,
                              sr_release="720p", decode=False, pipe=pipe_720p)


def check_run(out, steps, frames, image_given):
    """The invariants of every SR run, from the recorded tensors alone."""
    latent_hw = (out["height"] // 16, out["width"] // 16)
    shape = (1, 32, frames, *latent_hw)
    sigmas, timesteps = shifted_timesteps(steps)
    assert torch.allclose(out["timesteps"], timesteps) and torch.allclose(out["sigmas"], sigmas)
    assert len(out["steps"]) == len(out["step_latents"]) == steps

    # noise: the initial latent from Generator("cpu").manual_seed(seed); the lq noise is the global RNG's first draw
    assert torch.equal(out["initial_noise"], torch.randn(shape, generator=torch.Generator().manual_seed(SEED)))
    torch.manual_seed(SEED)
    assert torch.equal(out["lq_noise"], torch.randn(shape))

    # low-res path: bilinear per frame to the high-res latent size, upsampler, then 0.3 * lq + 0.7 * noise
    lq = out["lq_input"]
    resized = F.interpolate(lq.permute(0, 2, 1, 3, 4).flatten(0, 1), size=latent_hw, mode="bilinear",
                            align_corners=False).unflatten(0, (1, frames)).permute(0, 2, 1, 3, 4)
    assert torch.allclose(out["lq_resized"], resized, atol=1e-6)
    assert out["lq_upsampled"].shape == shape and not torch.allclose(out["lq_upsampled"], resized)
    assert torch.allclose(out["lq_augmented"], 0.3 * out["lq_upsampled"] + 0.7 * out["lq_noise"], atol=1e-6)

    # image latent and mask: frame 0 only, for image-to-video
    cond = out["cond_latents"]
    assert cond.shape == (1, 33, *shape[2:])
    assert torch.all(cond[:, :32, 1:] == 0) and torch.all(cond[:, 32, 1:] == 0)
    if image_given:
        assert out["image_latent"].shape == (1, 32, 1, *latent_hw)
        assert out["image_pixels"].shape == (1, 3, 1, out["height"], out["width"])
        assert out["image_pixels"].min() >= -1 and out["image_pixels"].max() <= 1
        assert torch.equal(cond[:, :32, :1], out["image_latent"]) and torch.all(cond[:, 32, 0] == 1)
    else:
        assert out["image_latent"] is None and torch.all(cond == 0)

    latent = out["initial_noise"]
    zeroed = 0
    for i, step in enumerate(out["steps"]):
        hidden = step["hidden_states"]
        assert hidden.shape == (1, 98, *shape[2:])
        assert torch.equal(hidden[:, :32], latent)  # the noisy latent first
        assert torch.equal(hidden[:, 32:65], cond)  # image latent and mask stay on at every step
        t = step["timestep"]
        assert torch.equal(t, out["timesteps"][i:i + 1])
        # MeanFlow: the second timestep is the next one, 0 at the last step
        expected_r = out["timesteps"][i + 1:i + 2] if i + 1 < steps else torch.zeros(1)
        assert torch.equal(step["timestep_r"], expected_r)
        if t.item() < LQ_THRESHOLD:
            assert torch.all(hidden[:, 65:98] == 0)
            zeroed += 1
        else:
            assert torch.equal(hidden[:, 65:97], out["lq_augmented"]) and torch.all(hidden[:, 97] == 1)
        # the same text, glyph and vision conditioning at every step, no guidance embedding
        assert torch.equal(step["text_states"], out["prompt_embeds"])
        assert torch.equal(step["byt5_text_states"], out["byt5_text_states"])
        assert torch.equal(step["vision_states"], out["vision_states"])
        assert step["guidance"] is None and step["mask_type"] == ("i2v" if image_given else "t2v")
        # Euler on the velocity, in float32
        sigma, sigma_next = out["sigmas"][i], out["sigmas"][i + 1]
        assert torch.allclose(out["step_latents"][i], latent + step["velocity"] * (sigma_next - sigma), atol=1e-6)
        latent = out["step_latents"][i]
    assert torch.equal(out["final_latent"], latent) and torch.isfinite(latent).all()
    return zeroed


def test_720p_sr_records_the_stage(run_720p):
    out = run_720p
    assert (out["width"], out["height"]) == (1280, 720)  # Tencent's bucket map: 848x480 -> 1280x720
    zeroed = check_run(out, steps=6, frames=2, image_given=True)
    assert zeroed == 3  # 666.7, 500, 285.7
    # the glyph text reaches ByT5: 'Text "HELLO". ' in bytes plus </s>
    assert out["byt5_text_mask"].sum() == len('Text "HELLO". ') + 1
    assert out["vision_states"].abs().sum() > 0


def test_720p_sr_is_deterministic_and_follows_the_seed(release, pipe_720p, run_720p):
    lq, image = lowres_latent(2, 480, 848), start_image(848, 480)
    again = ref.run_tencent_sr(release, lq, image, PROMPT, seed=SEED, steps=1, decode=False, pipe=pipe_720p)
    assert torch.equal(again["steps"][0]["hidden_states"], run_720p["steps"][0]["hidden_states"])
    assert torch.equal(again["initial_noise"], run_720p["initial_noise"])
    other = ref.run_tencent_sr(release, lq, image, PROMPT, seed=SEED + 1, steps=1, decode=False, pipe=pipe_720p)
    assert not torch.equal(other["lq_noise"], run_720p["lq_noise"])


def test_1080p_sr_records_the_stage(release):
    out = ref.run_tencent_sr(release, lowres_latent(1, 720, 1280), start_image(1280, 720), PROMPT, seed=SEED,
                             sr_release="1080p", decode=False)
    assert (out["width"], out["height"]) == (1904, 1072)  # not 1920x1080: Tencent's 1440 buckets
    assert check_run(out, steps=8, frames=1, image_given=True) == 4  # 666.7, 545.5, 400, 222.2


@pytest.fixture(scope="module")
def run_t2v(release, pipe_720p):
    return ref.run_tencent_sr(release, lowres_latent(1, 480, 848), None, "a red car", seed=SEED, decode=False,
                              pipe=pipe_720p)


def test_text_to_video_sr_has_no_image_condition(run_t2v):
    out = run_t2v
    assert check_run(out, steps=6, frames=1, image_given=False) == 3
    assert torch.all(out["vision_states"] == 0)


@pytest.mark.skipif(os.environ.get("TENCENT_SR_DECODE") != "1", reason="decoding 720p on a CPU takes minutes")
def test_720p_sr_decodes_to_the_target_size(release, pipe_720p):
    out = ref.run_tencent_sr(release, lowres_latent(2, 480, 848), start_image(848, 480), PROMPT, seed=SEED,
                             steps=1, decode=True, pipe=pipe_720p)
    assert out["frames"].shape == (1, 3, 5, 720, 1280)
    assert out["frames"].min() >= 0 and out["frames"].max() <= 1


@pytest.mark.parametrize("task", ["i2v", "t2v"])
def test_diffusers_transformer_equals_tencents_on_every_sr_step(release, task, request):
    """diffusers' HunyuanVideo15Transformer3DModel, given the SR file through the pack's key mapping, gives
    Tencent's velocity on the inputs Tencent's pipeline built (98 channels, MeanFlow timestep_r, ByT5, SigLIP)."""
    from diffusers import HunyuanVideo15Transformer3DModel
    from safetensors.torch import load_file
    from tencent_sr_release import sr_transformer_config

    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import transformer as pack_transformer

    out = request.getfixturevalue("run_720p" if task == "i2v" else "run_t2v")
    original = load_file(str(release / "transformer" / "720p_sr_distilled" / "diffusion_pytorch_model.safetensors"))
    config = sr_transformer_config("720p")
    model = HunyuanVideo15Transformer3DModel(
        in_channels=config["in_channels"], out_channels=config["out_channels"], num_attention_heads=config["heads_num"],
        attention_head_dim=config["hidden_size"] // config["heads_num"], num_layers=config["mm_double_blocks_depth"],
        num_refiner_layers=2, text_embed_dim=config["text_states_dim"], image_embed_dim=config["vision_states_dim"],
        rope_axes_dim=tuple(config["rope_dim_list"]), use_meanflow=True,
    ).eval()
    model.load_state_dict(pack_transformer.original_to_diffusers(original), strict=True)
    for step in out["steps"]:
        with torch.no_grad():
            velocity = model(
                hidden_states=step["hidden_states"], timestep=step["timestep"], timestep_r=step["timestep_r"],
                encoder_hidden_states=step["text_states"], encoder_attention_mask=step["text_mask"],
                encoder_hidden_states_2=step["byt5_text_states"], encoder_attention_mask_2=step["byt5_text_mask"],
                image_embeds=step["vision_states"], return_dict=False,
            )[0]
        assert torch.allclose(velocity, step["velocity"], atol=1e-5, rtol=1e-5), step["timestep"]
