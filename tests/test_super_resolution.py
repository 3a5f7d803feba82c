"""HunyuanVideo-1.5 super-resolution on tiny models written to disk in the layouts users have: the SR transformer
(98 input channels at full size) against diffusers' own class, the SR conditioning built channel by channel, the
whole chain through the nodes and the command line, and every refusal before any work."""

import json

import pytest
import torch
from conftest import encode_inputs, run_node, sample_inputs, te_choice, test_image, tiny_sr_transformer, \
    transformer_inputs
from original_layout_15 import transformer_to_original

from hyv_pack.hunyuan_i2v import loading, stages
from hyv_pack.hunyuan_i2v.errors import ModelFileError, UserInputError
from hyv_pack.hunyuan_i2v.hunyuan_video_15 import defaults, demo, super_resolution
from hyv_pack.hunyuan_i2v.shared.sampling import SamplingSettings

C = demo.LATENT_CHANNELS
SR_SIZE = (128, 96)  # (width, height) of the tiny SR video: 2x the 64x48 base


@pytest.fixture(scope="module")
def sr_root(models15_root):
    """The tiny 1.5 models, with conftest's SR transformers (ComfyUI's fused layout with its model_type header,
    Tencent's split layout without) and both upsampler kinds, and the SR transformer they were written from."""
    return models15_root, tiny_sr_transformer()


@pytest.fixture(scope="module")
def base_run(sr_root):
    """The tiny 1.5 base stage through the nodes: conditioning, latent, and the parts the SR stage reuses."""
    import os

    root, _ = sr_root
    os.environ["HUNYUAN_I2V_MODELS"] = str(root)
    try:
        encoders = run_node("HunyuanI2VLoadTextEncoders", **te_choice(root / "diffusers" / "tiny15"))[0]
        vae = run_node("HunyuanI2VLoadVAE", vae_name="tiny15_vae.safetensors", dtype="fp32")[0]
        image, pil = test_image(96, 128)
        cond = run_node("HunyuanI2VEncode", **encode_inputs(encoders, vae, image, prompt='a sign "OPEN"',
                                                            width=64, height=48))[0]
        base = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("tiny15_comfy.safetensors"))[0]
        latent = run_node("HunyuanI2VSample", **sample_inputs(base, cond, seed=3, steps=2, frames=5))[0]
        yield {"encoders": encoders, "vae": vae, "image": image, "pil": pil, "cond": cond, "base": base,
               "latent": latent}
    finally:
        os.environ.pop("HUNYUAN_I2V_MODELS", None)


def sr_inputs(base_run, upsampler, **overrides):
    return dict(conditioning=base_run["cond"], latent=base_run["latent"], upsampler=upsampler, vae=base_run["vae"],
                image=base_run["image"], resolution="720p", width=SR_SIZE[0], height=SR_SIZE[1],
                noise_augmentation=0.7) | overrides


@pytest.fixture(scope="module")
def upsampler720(base_run):
    return run_node("HunyuanI2VLoadLatentUpsampler", upsampler_name="tiny_upsampler_720p.safetensors")[0]


# ---------------------------------------------------------------- the transformer

@pytest.mark.parametrize("name", ["tiny15_720p_sr_comfy.safetensors", "tiny15_sr_tencent.safetensors"])
def test_sr_transformer_forward_equals_diffusers(sr_root, name):
    root, reference = sr_root
    loaded = loading.load_model(root / "diffusion_models" / name, "fp32")
    assert loaded.super_resolution and loaded.variant == defaults.SR_DISTILLED
    assert loaded.model.config.in_channels == 3 * C + 2
    gen = torch.Generator().manual_seed(0)
    inputs = dict(
        hidden_states=torch.randn(1, 3 * C + 2, 2, 3, 4, generator=gen), timestep=torch.tensor([800.0]),
        timestep_r=torch.tensor([600.0]),
        encoder_hidden_states=torch.randn(1, 5, demo.TEXT_HIDDEN, generator=gen),
        encoder_attention_mask=torch.ones(1, 5),
        encoder_hidden_states_2=torch.randn(1, 3, demo.BYT5_HIDDEN, generator=gen),
        encoder_attention_mask_2=torch.ones(1, 3),
        image_embeds=torch.randn(1, demo.IMAGE_TOKENS, demo.IMAGE_HIDDEN, generator=gen),
    )
    with torch.no_grad():
        ours = loaded.model(**inputs, return_dict=False)[0]
        theirs = reference(**inputs, return_dict=False)[0]
    assert (ours - theirs).abs().max().item() < 1e-5


def test_loader_info_names_the_sr_release(sr_root):
    root, _ = sr_root
    comfy = loading.load_model(root / "diffusion_models" / "tiny15_720p_sr_comfy.safetensors", "fp32")
    assert comfy.resolution == "720p"
    assert "super-resolution" in comfy.describe() and "720p super-resolution release" in comfy.describe()
    tencent = loading.load_model(root / "diffusion_models" / "tiny15_sr_tencent.safetensors", "fp32")
    assert tencent.resolution is None and "Super-Resolution node's target decides" in tencent.describe()


def test_full_size_sr_channel_count_is_accepted():
    from diffusers import HunyuanVideo15Transformer3DModel
    from accelerate import init_empty_weights

    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import transformer

    with init_empty_weights():
        reference = HunyuanVideo15Transformer3DModel(in_channels=98, use_meanflow=True)
    shapes = {k: tuple(v.shape) for k, v in transformer_to_original(reference.state_dict(), True).items()}
    config = transformer.infer_config(shapes, {})
    assert config["in_channels"] == 98 and transformer.task_of(98, 32) == "sr"
    with pytest.raises(ModelFileError, match="97 input channels.*65.*98"):
        transformer.task_of(97, 32)


# ---------------------------------------------------------------- sizes

def test_target_sizes_follow_tencents_buckets():
    assert super_resolution.target_size(848, 480, "720p") == (1280, 720)
    assert super_resolution.target_size(1280, 720, "1080p") == (1904, 1072)
    assert super_resolution.target_size(480, 848, "720p") == (720, 1280)
    assert super_resolution.target_size(640, 640, "720p") == (960, 960)
    assert super_resolution.target_size(64, 48, "720p") == (1104, 832)  # Tencent's walk has no 960x720 bucket
    assert super_resolution.target_size(848, 480, "720p", 1024, 576) == (1024, 576)
    with pytest.raises(UserInputError, match="not larger than the base video"):
        super_resolution.target_size(1280, 720, "720p")
    with pytest.raises(UserInputError, match="not larger"):
        super_resolution.target_size(848, 480, "720p", 640, 368)
    with pytest.raises(UserInputError, match="multiple of 16"):
        super_resolution.target_size(848, 480, "720p", 1000, 720)


def test_bucket_lists_match_tencents_walk():
    buckets = super_resolution.bucket_sizes(960)
    assert (1280, 720) in buckets and (720, 1280) in buckets and (960, 960) in buckets
    assert all(w % 16 == 0 and h % 16 == 0 and w * h <= 960 * 960 for w, h in buckets)
    assert super_resolution.check_pairing("720p", 848, 480) is None
    assert "follows a 720p base" in super_resolution.check_pairing("1080p", 848, 480)


# ---------------------------------------------------------------- conditioning and sampling

def test_sr_conditioning_channels_step_by_step(sr_root, base_run, upsampler720):
    """What the SR transformer reads at each step, rebuilt from Tencent's recipe: [noisy | image latent on frame 0 |
    mask | 0.3 x upsampled + 0.7 x noise | ones], the last two zeroed once t < 700."""
    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import upsampler as upsampler_module

    root, _ = sr_root
    sr_cond = run_node("HunyuanI2VSuperResolution", **sr_inputs(base_run, upsampler720))[0]
    assert (sr_cond.width, sr_cond.height) == SR_SIZE and sr_cond.num_frames == 5
    scaled = base_run["latent"]["samples"] * base_run["cond"].latent_scale
    expected_low = upsampler_module.upsample_latent(scaled, upsampler720, SR_SIZE[1], SR_SIZE[0])
    assert torch.equal(sr_cond.low_res, expected_low)
    model = loading.load_model(root / "diffusion_models" / "tiny15_720p_sr_comfy.safetensors", "fp32")
    seen = []
    model.model.register_forward_pre_hook(lambda m, a, k: seen.append((k["hidden_states"].clone(),
                                                                        k["timestep"].item())), with_kwargs=True)
    result = stages.run_sample(model, sr_cond, SamplingSettings(seed=5, steps=0, num_frames=121, flow_shift=0.0, cfg_scale=0.0))
    assert result.settings.steps == 6 and result.settings.flow_shift == 2.0 and result.settings.num_frames == 5
    assert [round(t) for _, t in seen] == [1000, 909, 800, 667, 500, 286]
    generator = torch.Generator().manual_seed(5)
    torch.randn(sr_cond.low_res.shape, generator=generator)
    noise = torch.randn(sr_cond.low_res.shape, generator=generator)
    low = 0.3 * sr_cond.low_res + 0.7 * noise
    for hidden, t in seen:
        assert hidden.shape[1] == 3 * C + 2
        image, mask, lq, ones = hidden[:, C:2 * C], hidden[:, 2 * C], hidden[:, 2 * C + 1:3 * C + 1], hidden[:, -1]
        assert torch.equal(image[:, :, 0], sr_cond.image_latent[:, :, 0]) and not image[:, :, 1:].any()
        assert mask[:, 0].eq(1).all() and not mask[:, 1:].any()
        if t >= 700:
            assert torch.allclose(lq, low, atol=1e-6) and ones.eq(1).all()
        else:
            assert not lq.any() and not ones.any()
    assert result.latent["samples"].shape == (1, C, 2, SR_SIZE[1] // 16, SR_SIZE[0] // 16)


def test_whole_chain_through_the_nodes_ends_in_an_mp4_at_the_target_size(sr_root, base_run, upsampler720, tmp_path):
    import av

    from hyv_pack.hunyuan_i2v.shared import video

    sr_cond = run_node("HunyuanI2VSuperResolution", **sr_inputs(base_run, upsampler720),
                       text_encoders=base_run["encoders"])[0]
    model = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("tiny15_720p_sr_comfy.safetensors"))[0]
    latent = run_node("HunyuanI2VSample", **sample_inputs(model, sr_cond, seed=1))[0]
    frames, _ = run_node("HunyuanI2VDecode", vae=base_run["vae"], latent=latent, tiling=True, tile_size=64, fps=24.0)
    assert tuple(frames.shape) == (5, SR_SIZE[1], SR_SIZE[0], 3)
    path = tmp_path / "sr.mp4"
    video.write_mp4(frames, path, 24.0)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == SR_SIZE


# ---------------------------------------------------------------- refusals, each before any work

def test_i2v_file_with_sr_conditioning_and_the_reverse(sr_root, base_run, upsampler720):
    root, _ = sr_root
    sr_cond = run_node("HunyuanI2VSuperResolution", **sr_inputs(base_run, upsampler720))[0]
    with pytest.raises(UserInputError, match="comes from the Super-Resolution node.*Load the SR transformer"):
        run_node("HunyuanI2VSample", **sample_inputs(base_run["base"], sr_cond))
    sr_model = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("tiny15_720p_sr_comfy.safetensors"))[0]
    with pytest.raises(UserInputError, match="is a super-resolution release"):
        run_node("HunyuanI2VSample", **sample_inputs(sr_model, base_run["cond"]))


def test_release_and_target_disagree(sr_root, base_run):
    upsampler1080 = run_node("HunyuanI2VLoadLatentUpsampler", upsampler_name="tiny_upsampler_1080p.safetensors")[0]
    sr_cond = run_node("HunyuanI2VSuperResolution", **sr_inputs(base_run, upsampler1080, resolution="1080p"))[0]
    sr_model = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("tiny15_720p_sr_comfy.safetensors"))[0]
    with pytest.raises(UserInputError, match="targets 1080p.*720p super-resolution release"):
        run_node("HunyuanI2VSample", **sample_inputs(sr_model, sr_cond))


def test_wrong_upsampler_kind_for_the_target(base_run, upsampler720):
    with pytest.raises(UserInputError, match="720p latent upsampler.*target is 1080p"):
        run_node("HunyuanI2VSuperResolution", **sr_inputs(base_run, upsampler720, resolution="1080p"))


def test_target_smaller_than_the_input(base_run, upsampler720):
    with pytest.raises(UserInputError, match="not larger than the base video"):
        run_node("HunyuanI2VSuperResolution", **sr_inputs(base_run, upsampler720, width=48, height=32))


def test_latent_of_the_13b_family(base_run, upsampler720):
    latent = {"samples": torch.zeros(1, 16, 2, 3, 4), "hunyuan_i2v": {"family": "hunyuan_video_13b"}}
    with pytest.raises(UserInputError, match="13 B HunyuanVideo-I2V model.*HunyuanVideo-1.5 Sample"):
        run_node("HunyuanI2VSuperResolution", **sr_inputs(base_run, upsampler720, latent=latent))


def test_sr_file_refused_in_the_upsampler_slot_and_upsampler_in_the_transformer_slot(sr_root):
    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import upsampler as upsampler_module

    root, _ = sr_root
    with pytest.raises(ModelFileError, match="transformer"):
        upsampler_module.load_upsampler(root / "diffusion_models" / "tiny15_720p_sr_comfy.safetensors")
    with pytest.raises(ModelFileError, match="latent upsampler"):
        loading.load_model(root / "latent_upscale_models" / "tiny_upsampler_720p.safetensors", "fp32")


# ---------------------------------------------------------------- the command line

def cli_args(root, tmp_path, *extra):
    from PIL import Image

    image = tmp_path / "start.png"
    test_image(48, 64)[1].save(image)
    assert isinstance(Image.open(image), Image.Image)
    return ["--models", str(root), "--diffusers", "tiny15", "--transformer", "tiny15_comfy.safetensors",
            "--vae", "tiny15_vae.safetensors", "--dtype", "fp32", "--quiet", "--frames", "5", "--steps", "2",
            "--resolution", "480p", "--width", "64", "--height", "48", "--image", str(image), *extra]


def test_cli_upscale_writes_an_mp4_at_tencents_size(sr_root, tmp_path, capsys):
    import av

    from hyv_pack.hunyuan_i2v import cli

    root, _ = sr_root
    out = tmp_path / "sr.mp4"
    code = cli.main(["generate", "--output", str(out), "--prompt", "a cat", *cli_args(
        root, tmp_path, "--upscale", "720p", "--sr-transformer", "tiny15_720p_sr_comfy.safetensors",
        "--upsampler", "tiny_upsampler_720p.safetensors", "--sr-width", "128", "--sr-height", "96")])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "Super-resolution 128x96: steps 6, shift 2, cfg 1" in printed.err
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (128, 96)
        assert sum(1 for _ in container.decode(video=0)) == 5


def test_cli_batch_upscales_the_jobs_that_ask(sr_root, tmp_path, capsys):
    from hyv_pack.hunyuan_i2v import cli

    root, _ = sr_root
    args = cli_args(root, tmp_path, "--sr-transformer", "tiny15_720p_sr_comfy.safetensors",
                    "--upsampler", "tiny_upsampler_720p.safetensors")
    image = args[args.index("--image") + 1]
    del args[args.index("--image"):args.index("--image") + 2]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"image": image, "output": "plain.mp4"}) + "\n"
                    + json.dumps({"image": image, "output": "big.mp4", "upscale": "720p", "sr_width": 96, "sr_height": 64})
                    + "\n")
    code = cli.main(["batch", str(jobs), "--output-dir", str(tmp_path / "out"), *args])
    assert code == 0, capsys.readouterr().err
    from hyv_pack.hunyuan_i2v.shared.video import read_mp4

    assert tuple(read_mp4(tmp_path / "out" / "plain.mp4")[0].shape[1:3]) == (48, 64)
    assert tuple(read_mp4(tmp_path / "out" / "big.mp4")[0].shape[1:3]) == (64, 96)


@pytest.mark.parametrize("extra, says", [
    (["--upscale", "720p"], "needs --sr-transformer"),
    (["--upscale", "1080p", "--sr-transformer", "tiny15_720p_sr_comfy.safetensors",
      "--upsampler", "tiny_upsampler_720p.safetensors"], "is the 720p latent upsampler"),
    (["--upscale", "1080p", "--sr-transformer", "tiny15_720p_sr_comfy.safetensors",
      "--upsampler", "tiny_upsampler_1080p.safetensors"], "is the 720p super-resolution release"),
    (["--upscale", "720p", "--sr-transformer", "tiny15_comfy.safetensors",
      "--upsampler", "tiny_upsampler_720p.safetensors"], "is an image-to-video release"),
    (["--upscale", "720p", "--sr-transformer", "tiny15_720p_sr_comfy.safetensors"], "give --upsampler too"),
    (["--upscale", "720p", "--sr-transformer", "tiny15_720p_sr_comfy.safetensors",
      "--upsampler", "@diffusion_models/tiny15_sr_tencent.safetensors"], "latent upsampler"),
], ids=["no-sr-files", "upsampler-kind", "sr-release", "i2v-as-sr", "one-of-two", "transformer-as-upsampler"])
def test_cli_refuses_before_loading(sr_root, tmp_path, capsys, monkeypatch, extra, says):
    from hyv_pack.hunyuan_i2v import cli, loading as loading_module

    root, _ = sr_root
    monkeypatch.setattr(loading_module, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    extra = [str(root / item[1:]) if item.startswith("@") else item for item in extra]
    code = cli.main(["generate", "--output", str(tmp_path / "x.mp4"), *cli_args(root, tmp_path, *extra)])
    assert code == 2
    assert says in capsys.readouterr().err


def test_cli_refuses_an_sr_file_as_the_base_transformer(sr_root, tmp_path, capsys):
    from hyv_pack.hunyuan_i2v import cli

    root, _ = sr_root
    args = cli_args(root, tmp_path)
    args[args.index("tiny15_comfy.safetensors")] = "tiny15_720p_sr_comfy.safetensors"
    assert cli.main(["generate", "--output", str(tmp_path / "x.mp4"), *args]) == 2
    assert "is a super-resolution release: give it as --sr-transformer" in capsys.readouterr().err


def test_start_image_is_resized_as_tencents_sr_stage_does():
    """LANCZOS to cover with sizes rounded to nearest, then torchvision's centre crop: 848x480 -> 1280x725 cropped
    from row 2 (diffusers' resize would give 1280x724), 1280x720 -> 1906x1072 cropped from column 1."""
    from PIL import Image

    for (w, h), (tw, th), covered, offset in (((848, 480), (1280, 720), (1280, 725), (0, 2)),
                                              ((1280, 720), (1904, 1072), (1906, 1072), (1, 0))):
        image = test_image(h, w)[1]
        expected = image.resize(covered, Image.LANCZOS).crop((*offset, offset[0] + tw, offset[1] + th))
        got = super_resolution.cover_and_crop(image, tw, th)
        assert got.size == (tw, th) and list(got.getdata()) == list(expected.getdata())


# ---------------------------------------------------------------- the loader's options on the SR transformer

@pytest.mark.parametrize("cache", ["taylorseer", "first block cache"])
def test_sr_transformer_with_fp8_storage_a_lora_and_a_cache(sr_root, base_run, upsampler720, tmp_path, cache,
                                                            monkeypatch):
    """fp8 storage, a LoRA (on the fused q|k|v and the output projection) and each cache work on the SR release as
    on the base: the LoRA moves the result, and fp8 storage keeps it near the bf16 one."""
    from parallel_harness import write_lora

    root, _ = sr_root
    sr_cond = run_node("HunyuanI2VSuperResolution", **sr_inputs(base_run, upsampler720))[0]
    monkeypatch.setenv("HUNYUAN_I2V_MODELS", str(root))  # put back afterwards: base_run's models stay reachable
    lora = write_lora(root / "loras" / "sr_lora.safetensors", demo.TRANSFORMER_HEADS * demo.TRANSFORMER_HEAD_DIM, C)
    try:
        runs = {}
        for name, fp8, with_lora in (("bf16", False, False), ("fp8", True, False), ("fp8+lora", True, True)):
            model = run_node("HunyuanI2VLoadTransformer", **transformer_inputs(
                "tiny15_720p_sr_comfy.safetensors", weight_dtype="bf16", fp8_storage=fp8))[0]
            if with_lora:
                model = run_node("HunyuanI2VLoRA", model=model, lora_name=lora.name, strength=1.0)[0]
            runs[name] = run_node("HunyuanI2VSample", **sample_inputs(model, sr_cond, seed=2, cache=cache,
                                                                      cache_threshold=0.05))[0]["samples"]
    finally:
        lora.unlink()
    assert all(torch.isfinite(x).all() for x in runs.values())
    scale = runs["bf16"].abs().mean().item()
    assert (runs["fp8"] - runs["bf16"]).abs().mean().item() < 0.1 * scale
    assert (runs["fp8+lora"] - runs["fp8"]).abs().mean().item() > 1e-3 * scale


def test_sampling_text_says_what_fits_for_the_sr_stage(sr_root, base_run, upsampler720, monkeypatch):
    """The Sample node's memory plan for the SR release: the estimate at the high size, and what to change when
    nothing fits (the base video's frames or a smaller SR size, not the SR node's own frames)."""
    from hyv_pack.hunyuan_i2v import planner

    monkeypatch.setenv("HUNYUAN_I2V_MODELS", str(sr_root[0]))
    sr_cond = run_node("HunyuanI2VSuperResolution", **sr_inputs(base_run, upsampler720))[0]
    model = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("tiny15_720p_sr_comfy.safetensors"))[0]
    estimate = planner.sample_estimate(model, sr_cond, sr_cond.num_frames)
    roomy = stages.plan_sample(model, sr_cond, sr_cond.num_frames, torch.device("cpu"), None, 10 * estimate.total)
    assert any("sample: about" in note and "does not fit" not in note for note in roomy)
    tight = stages.plan_sample(model, sr_cond, sr_cond.num_frames, torch.device("cpu"), None, 1000)
    assert any("does not fit" in note for note in tight)
    assert any("lower the base video's frames, or upscale to a smaller size" in note for note in tight)
