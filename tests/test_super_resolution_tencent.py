"""The pack's super-resolution stage against Tencent's own SR pipeline, on the same tiny weights in Tencent's layout.

Opt-in: skipped unless TENCENT_HV15_PATH names a work tree of Tencent-Hunyuan/HunyuanVideo-1.5 (see
tests/tencent_sr_reference.py). Both sides read one folder written by tests/tencent_sr_release.py; the pack reads it
through the code users run (loading.load_model on the SR transformer file, upsampler.load_upsampler on Tencent's
upsampler folder, loading.load_vae on Tencent's VAE file, stages.run_super_resolution and stages.run_sample), in
float32, from the same low-resolution latent, start image and seed as Tencent's recorded run.

What is held fixed so each comparison isolates one part:
- the text encoders are out of the main comparison: the pack's conditioning carries Tencent's recorded Qwen, ByT5
  and SigLIP states (the pack's own SigLIP tokens are compared on their own);
- the low-resolution noise is Tencent's recorded draw (Tencent takes it from the device's global RNG, the pack from
  its seeded generator: a documented choice), injected through super_resolution.augmentation_noise;
- the main runs use start images whose aspect is exactly the SR size's, where Tencent's resize and the pack's
  (diffusers' image processor) agree; test_start_image_resize_is_the_only_image_difference covers the other case.
"""

import json
import shutil
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import save_file_with_config
from PIL import Image

import tencent_sr_reference as ref

pytestmark = pytest.mark.skipif(ref.tencent_path() is None, reason=f"set {ref.ENV} to run Tencent's SR reference")

PROMPT = 'a sign that says "HELLO" in a red car'
SEED = 7
RTOL = ATOL = 1e-4  # float32 on both sides; measured differences are about 1e-6


@dataclass(frozen=True)
class Case:
    base: tuple  # (width, height) of the low-resolution video
    frames: int  # latent frames
    image: tuple  # (width, height) of the start image: exactly the SR size's aspect
    awkward_image: tuple  # a start image whose aspect is the base video's, not quite the SR size's


CASES = {
    "720p": Case(base=(848, 480), frames=2, image=(640, 360), awkward_image=(848, 480)),  # SR size 1280x720
    "1080p": Case(base=(1280, 720), frames=1, image=(952, 536), awkward_image=(1280, 720)),  # SR size 1904x1072
}


def noise_image(width, height, seed=0):
    """Random pixels: any difference in resizing shows at full strength (a photo would hide most of it)."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def image_tensor(pil):
    """The ComfyUI IMAGE of a PIL image: [1, H, W, 3] in 0..1."""
    return torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255).unsqueeze(0)


def lowres_latent(case, seed=1):
    # magnitudes of a real scaled latent (about unit variance)
    width, height = case.base
    return torch.randn(1, 32, case.frames, height // 16, width // 16, generator=torch.Generator().manual_seed(seed))


def max_diff(a, b):
    return (a.float() - b.float()).abs().max().item()


def sr_transformer_file(release, sr, folder):
    """Tencent's SR weights file, with the pack's JSON "config" metadata for what the tiny tensors cannot tell (the
    rope split; the real release's is the pack's default) and the release's resolution."""
    source = release / "transformer" / f"{sr}_sr_distilled"
    config = json.loads((source / "config.json").read_text())
    from safetensors.torch import load_file

    path = folder / f"tencent_{sr}_sr_distilled.safetensors"
    save_file_with_config(load_file(str(source / "diffusion_pytorch_model.safetensors")), path,
                          {"rope_axes_dim": config["rope_dim_list"], "resolution": sr})
    return path


def base_conditioning(tencent, vae, case):
    """The base stage's conditioning as the Encode node hands it on, carrying Tencent's recorded prompt and vision
    states (the base image latent and start image are not read by the SR stage)."""
    from hyv_pack.hunyuan_i2v.hunyuan_video_15.conditioning import I2VConditioning, PromptEmbedding

    prompt = PromptEmbedding(tencent["prompt_embeds"], tencent["prompt_mask"], tencent["byt5_text_states"],
                             tencent["byt5_text_mask"])
    width, height = case.base
    return I2VConditioning(
        prompt, prompt, tencent["vision_states"], torch.zeros(1, 32, 1, height // 16, width // 16), width, height,
        torch.zeros(1, height, width, 3), vae.scaling_factor, vae.spatial_ratio, vae.temporal_ratio,
    )


def base_latent(lowres, vae):
    """The base Sample node's LATENT: unscaled, as ComfyUI's LATENTs are."""
    from hyv_pack.hunyuan_i2v import stages

    return {"samples": lowres / vae.scaling_factor, stages.LATENT_INFO_KEY: {"family": "hunyuan_video_15"}}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return ref.write_tiny_tencent_sr_release(tmp_path_factory.mktemp("tencent_sr"), seed=0)


@pytest.fixture(scope="module", params=list(CASES))
def sr(request, release, tmp_path_factory):
    """One release at a time: Tencent's pipeline and recorded run, and the pack's parts loaded from the same folder."""
    from hyv_pack.hunyuan_i2v import loading
    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import upsampler

    name = request.param
    case = CASES[name]
    pipe = ref.load_tencent_sr_pipeline(release, name)
    pil = noise_image(*case.image)
    tencent = ref.run_tencent_sr(release, lowres_latent(case), pil, PROMPT, seed=SEED, sr_release=name,
                                 decode=False, pipe=pipe)
    transformer = loading.load_model(sr_transformer_file(release, name, tmp_path_factory.mktemp(name)), "fp32")
    upsampler_ = upsampler.load_upsampler(release / "upsampler", name)
    vae = loading.load_vae(release / "vae" / "diffusion_pytorch_model.safetensors", "fp32")
    yield {"name": name, "case": case, "pipe": pipe, "pil": pil, "tencent": tencent, "transformer": transformer,
           "upsampler": upsampler_, "vae": vae}


def run_pack(sr, image=None, encoders=None, lq_noise=None):
    """The pack's SR stage (Super-Resolution node's stage, then Sample's) with every transformer call recorded."""
    from hyv_pack.hunyuan_i2v import stages
    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import super_resolution
    from hyv_pack.hunyuan_i2v.shared.sampling import SamplingSettings

    tencent, case, vae, transformer = sr["tencent"], sr["case"], sr["vae"], sr["transformer"]
    cond = stages.run_super_resolution(
        base_conditioning(tencent, vae, case), base_latent(tencent["lq_input"], vae), sr["upsampler"], vae,
        image_tensor(image or sr["pil"]), sr["name"], encoders=encoders,
    )
    calls = []

    def inputs(module, args, kwargs):
        calls.append({k: v.detach().clone() if torch.is_tensor(v) else v for k, v in kwargs.items()})

    def output(module, args, kwargs, result):
        calls[-1]["velocity"] = result[0].detach().clone()

    handles = [transformer.model.register_forward_pre_hook(inputs, with_kwargs=True),
               transformer.model.register_forward_hook(output, with_kwargs=True)]
    noise = tencent["lq_noise"] if lq_noise is None else lq_noise
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(super_resolution, "augmentation_noise", lambda shape, seed: noise.clone())
            # every setting at 0 / the widget default: the SR release's own defaults (steps, shift, CFG)
            requested = SamplingSettings(seed=SEED, steps=0, num_frames=121, flow_shift=0.0, embedded_guidance=0.0,
                                         cfg_scale=0.0)
            result = stages.run_sample(transformer, cond, requested)
    finally:
        for handle in handles:
            handle.remove()
    return {"cond": cond, "calls": calls, "result": result,
            "final_latent": result.latent["samples"] * cond.latent_scale}


@pytest.fixture(scope="module")
def pack(sr):
    return run_pack(sr)


def test_output_size_and_settings(sr, pack):
    tencent, cond = sr["tencent"], pack["cond"]
    assert (cond.width, cond.height) == (tencent["width"], tencent["height"])
    assert pack["final_latent"].shape == tencent["final_latent"].shape
    settings = pack["result"].settings
    assert settings.steps == len(tencent["steps"]) and settings.cfg_scale == 1.0 and settings.flow_shift == 2.0
    assert settings.num_frames == (sr["case"].frames - 1) * 4 + 1


def test_upsampled_latent(sr, pack):
    assert torch.allclose(pack["cond"].low_res, sr["tencent"]["lq_upsampled"], rtol=RTOL, atol=ATOL), \
        max_diff(pack["cond"].low_res, sr["tencent"]["lq_upsampled"])


def test_start_image_latent_at_the_sr_size(sr, pack):
    ours, theirs = pack["cond"].image_latent, sr["tencent"]["image_latent"]
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, rtol=RTOL, atol=ATOL), max_diff(ours, theirs)


def test_initial_noise_is_tencents_draw(sr):
    from hyv_pack.hunyuan_i2v.shared.sampling import initial_noise

    theirs = sr["tencent"]["initial_noise"]
    ours = initial_noise(tuple(theirs.shape), SEED)
    # Tencent: torch.randn(shape, generator=Generator("cpu").manual_seed(seed)) in its target dtype (float32 here)
    assert torch.equal(theirs, torch.randn(theirs.shape, generator=torch.Generator("cpu").manual_seed(SEED)))
    assert ours.dtype == torch.float32 and torch.equal(ours, theirs)


def test_transformer_input_at_every_step(sr, pack):
    """The 98 channels: noisy latent | image latent | mask | noised upsampled latent | ones (zeroed below t 700)."""
    steps = sr["tencent"]["steps"]
    assert len(pack["calls"]) == len(steps)
    for i, (ours, theirs) in enumerate(zip(pack["calls"], steps)):
        hidden, expected = ours["hidden_states"], theirs["hidden_states"]
        assert hidden.shape == expected.shape == (1, 98, *expected.shape[2:])
        assert torch.allclose(hidden, expected, rtol=RTOL, atol=ATOL), (i, max_diff(hidden, expected))
        # the same conditioning tokens Tencent's transformer read
        assert torch.equal(ours["encoder_hidden_states"], theirs["text_states"])
        assert torch.equal(ours["encoder_hidden_states_2"], theirs["byt5_text_states"])
        assert torch.equal(ours["image_embeds"], theirs["vision_states"])
        assert torch.equal(ours["encoder_attention_mask"], theirs["text_mask"].float())
        assert torch.equal(ours["encoder_attention_mask_2"], theirs["byt5_text_mask"].float())


def test_timesteps_velocity_and_final_latent(sr, pack):
    steps = sr["tencent"]["steps"]
    for i, (ours, theirs) in enumerate(zip(pack["calls"], steps)):
        # diffusers' scheduler shifts the sigmas in float64, Tencent's in float32: 800 against 799.99994
        assert torch.allclose(ours["timestep"], theirs["timestep"], rtol=RTOL, atol=0), i
        assert torch.allclose(ours["timestep_r"], theirs["timestep_r"], rtol=RTOL, atol=0), i
        assert torch.allclose(ours["velocity"], theirs["velocity"], rtol=RTOL, atol=ATOL), \
            (i, max_diff(ours["velocity"], theirs["velocity"]))
    final, expected = pack["final_latent"], sr["tencent"]["final_latent"]
    assert torch.allclose(final, expected, rtol=RTOL, atol=ATOL), max_diff(final, expected)
    calls, tencent = pack["calls"], sr["tencent"]
    worst = {key: max(max_diff(ours[key], theirs[their_key]) for ours, theirs in zip(calls, steps))
             for key, their_key in (("hidden_states", "hidden_states"), ("timestep", "timestep"),
                                    ("timestep_r", "timestep_r"), ("velocity", "velocity"))}
    upsampled = max_diff(pack["cond"].low_res, tencent["lq_upsampled"])
    print(f"\n{sr['name']} max |pack - Tencent|: upsampled latent {upsampled:.2e}, image latent "
          f"{max_diff(pack['cond'].image_latent, tencent['image_latent']):.2e}, 98-channel input "
          f"{worst['hidden_states']:.2e}, timestep {worst['timestep']:.2e}, timestep_r {worst['timestep_r']:.2e}, "
          f"velocity {worst['velocity']:.2e}, final latent {max_diff(final, expected):.2e} (max |value| "
          f"{expected.abs().max().item():.2f})")


def tencent_image_latent(pipe, pil, width, height):
    """Tencent's own start-image step (get_image_condition_latents) alone, with the pixels it hands its VAE."""
    seen = {}
    encode = pipe.vae.encode

    def recording(pixels, *args, **kwargs):
        seen["pixels"] = pixels.detach().clone()
        return encode(pixels, *args, **kwargs)

    pipe.vae.encode = recording
    try:
        with torch.no_grad():
            latent = pipe.get_image_condition_latents("i2v", pil, height, width)
    finally:
        pipe.vae.__dict__.pop("encode", None)
    return latent, seen["pixels"][:, :, 0]


def resized_and_cropped(pil, width, height, resize, top, left):
    """PIL LANCZOS to ``resize`` (w, h), crop (width, height) at (top, left), as pixels in -1..1 [1, 3, H, W]."""
    array = np.asarray(pil.resize(resize, Image.LANCZOS).crop((left, top, left + width, top + height)))
    return torch.from_numpy(array.astype(np.float32) / 127.5 - 1).permute(2, 0, 1).unsqueeze(0)


def test_start_image_of_another_aspect_is_resized_as_tencent_does(sr):
    """A start image of the base video's aspect (the usual case: the SR size's aspect is a little off it).

    Tencent resizes to cover the SR size with ``round(side * scale)`` (torchvision Resize, LANCZOS) and crops with
    ``int(round(margin / 2))``: 848x480 -> 1280x725 for 720p, 1280x720 -> 1906x1072 for 1080p. diffusers' image
    processor would floor (1280x724, 1905x1072); the pack's SR stage resizes as Tencent does, so its image latent is
    Tencent's.
    """
    case, vae = sr["case"], sr["vae"]
    pil = noise_image(*case.awkward_image, seed=3)
    width, height = sr["tencent"]["width"], sr["tencent"]["height"]
    theirs, their_pixels = tencent_image_latent(sr["pipe"], pil, width, height)

    from hyv_pack.hunyuan_i2v import stages
    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import super_resolution

    cond = stages.run_super_resolution(
        base_conditioning(sr["tencent"], vae, case), base_latent(sr["tencent"]["lq_input"], vae), sr["upsampler"], vae,
        image_tensor(pil), sr["name"],
    )
    w0, h0 = pil.size
    scale = max(width / w0, height / h0)
    tencent_size = (int(round(w0 * scale)), int(round(h0 * scale)))
    floored = (width, h0 * width // w0) if width / height > w0 / h0 else (w0 * height // h0, height)
    assert tencent_size != floored  # the case this test is about
    view = super_resolution.cover_and_crop(pil, width, height)
    ours_pixels = torch.from_numpy(np.asarray(view, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1).unsqueeze(0)
    assert max_diff(their_pixels.reshape(ours_pixels.shape), ours_pixels) < 1e-6
    assert torch.allclose(cond.image_latent, theirs, rtol=RTOL, atol=ATOL), max_diff(cond.image_latent, theirs)
    print(f"\n{sr['name']}: start image {w0}x{h0} -> {width}x{height} (covered at {tencent_size}): image latent "
          f"max |diff| {max_diff(cond.image_latent, theirs):.2e}")


# ---------------------------------------------------------------- the pack's own SigLIP tokens

def half(state):
    """fp16-rounded weights: Tencent loads Qwen and SigLIP in fp16 (the harness then computes in float32 from those
    rounded weights); its ByT5 stays float32."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def write_pack_encoder_files(release, folder):
    """Tencent's tiny encoders as ComfyUI's single files (what the pack's loader reads), and a ComfyUI package folder
    holding the same Qwen tokenizer, as ComfyUI bundles it."""
    from transformers import Qwen2_5_VLTextModel, SiglipVisionModel

    llm = release / "text_encoder" / "llm"
    qwen = Qwen2_5_VLTextModel.from_pretrained(llm)
    rope = qwen.config.rope_parameters
    save_file_with_config(half({"model." + k: v for k, v in qwen.state_dict().items()}), folder / "qwen.safetensors", {
        "head_dim": qwen.config.hidden_size // qwen.config.num_attention_heads,
        "mrope_section": list(rope["mrope_section"]), "rope_theta": rope["rope_theta"],
        "max_position_embeddings": qwen.config.max_position_embeddings,
    })
    glyph = torch.load(release / "text_encoder" / "Glyph-SDXL-v2" / "checkpoints" / "byt5_model.pt")
    byt5_config = json.loads((release / "text_encoder" / "byt5-small" / "config.json").read_text())
    state = {"shared.weight": glyph["embed_tokens.weight"]}
    state.update({"encoder." + k: v for k, v in glyph.items() if k != "embed_tokens.weight"})
    save_file_with_config(state, folder / "byt5.safetensors", {
        "d_kv": byt5_config["d_kv"], "relative_attention_max_distance": byt5_config["relative_attention_max_distance"],
    })
    siglip = SiglipVisionModel.from_pretrained(release / "vision_encoder" / "siglip" / "image_encoder")
    save_file_with_config(half({"vision_model." + k: v for k, v in siglip.state_dict().items()}),
                          folder / "siglip.safetensors",
                          {"num_attention_heads": siglip.config.num_attention_heads,
                           "image_size": siglip.config.image_size})
    tokenizer = folder / "comfy" / "text_encoders" / "qwen25_tokenizer"
    tokenizer.mkdir(parents=True)
    for item in llm.iterdir():
        if item.suffix != ".safetensors" and item.name != "config.json":
            shutil.copy(item, tokenizer / item.name)
    return folder


@pytest.fixture(scope="module")
def pack_encoders(release, tmp_path_factory):
    from hyv_pack.hunyuan_i2v import loading

    folder = write_pack_encoder_files(release, tmp_path_factory.mktemp("encoders"))
    sources = loading.TextEncoderSources(primary=folder / "qwen.safetensors", vision=folder / "siglip.safetensors",
                                         second=folder / "byt5.safetensors", comfy_package=folder / "comfy")
    encoders = loading.load_text_encoders(sources, "fp32", device="cpu")
    # Tencent's fp16 load rounds Qwen's RoPE frequencies too (a buffer the harness's float32 cast cannot restore):
    # the same rounding here, so only the code paths differ (7.6e-3 in the prompt states without it)
    rotary = encoders.text_encoder.rotary_emb
    rotary.inv_freq = rotary.inv_freq.half().float()
    return encoders


def tencent_vision_states(pipe, pil):
    """Tencent's SR vision step alone (the SigLIP view cropped at the release's bucket closest to the image)."""
    with torch.no_grad():
        return pipe._prepare_vision_states(np.array(pil), pipe.ideal_resolution, torch.zeros(1), "cpu")


def test_pack_vision_states_with_its_own_encoders(sr, pack_encoders):
    """With the text encoders given, the Super-Resolution stage recomputes SigLIP's tokens from the start image at
    the SR bucket, as Tencent's SR pipeline does (the recorded run's start image: its aspect is the bucket's)."""
    from hyv_pack.hunyuan_i2v import stages

    theirs = tencent_vision_states(sr["pipe"], sr["pil"])
    assert torch.equal(theirs, sr["tencent"]["vision_states"])  # the recorded run's
    cond = stages.run_super_resolution(
        base_conditioning(sr["tencent"], sr["vae"], sr["case"]), base_latent(sr["tencent"]["lq_input"], sr["vae"]),
        sr["upsampler"], sr["vae"], image_tensor(sr["pil"]), sr["name"], encoders=pack_encoders,
    )
    ours = cond.image_embeds
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, rtol=RTOL, atol=ATOL), max_diff(ours, theirs)


def test_pack_vision_states_of_another_aspect_match_tencents(sr, pack_encoders):
    """A start image of the base video's aspect: Tencent's SigLIP view (hyvideo/utils/data_utils.py
    resize_and_center_crop: ``round(side * scale)``, crop box rounded by PIL) is the pack's, so are the tokens."""
    from hyvideo.utils.data_utils import resize_and_center_crop

    from hyv_pack.hunyuan_i2v import stages
    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import super_resolution

    pil = noise_image(*sr["case"].awkward_image, seed=3)
    theirs = tencent_vision_states(sr["pipe"], pil)
    height, width = sr["pipe"].get_closest_resolution_given_reference_image(pil, sr["pipe"].ideal_resolution)
    their_view = np.array(resize_and_center_crop(np.array(pil), width, height))
    assert np.array_equal(np.asarray(super_resolution.cover_and_crop(pil, width, height)), their_view)
    cond = stages.run_super_resolution(
        base_conditioning(sr["tencent"], sr["vae"], sr["case"]), base_latent(sr["tencent"]["lq_input"], sr["vae"]),
        sr["upsampler"], sr["vae"], image_tensor(pil), sr["name"], encoders=pack_encoders,
    )
    assert torch.allclose(cond.image_embeds, theirs, rtol=RTOL, atol=ATOL), max_diff(cond.image_embeds, theirs)
    print(f"\n{sr['name']}: SigLIP of {pil.size[0]}x{pil.size[1]} at {width}x{height}: tokens max |diff| "
          f"{max_diff(cond.image_embeds, theirs):.2e}")


def test_pack_prompt_states_with_its_own_encoders(sr, pack_encoders):
    """The pack's Qwen (chat template, crop, hidden state 3 from the end) and ByT5 glyph states of the same prompt."""
    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import conditioning

    tencent = sr["tencent"]
    crop = conditioning.system_prefix_length(pack_encoders.tokenizer)
    ours = conditioning.encode_prompt(pack_encoders, PROMPT, crop, [])
    assert torch.equal(ours.glyph_mask, tencent["byt5_text_mask"])
    assert torch.allclose(ours.glyph, tencent["byt5_text_states"], rtol=RTOL, atol=ATOL), \
        max_diff(ours.glyph, tencent["byt5_text_states"])
    assert ours.text.shape == tencent["prompt_embeds"].shape
    assert torch.equal(ours.text_mask, tencent["prompt_mask"])
    assert torch.allclose(ours.text, tencent["prompt_embeds"], rtol=RTOL, atol=ATOL), \
        max_diff(ours.text, tencent["prompt_embeds"])
