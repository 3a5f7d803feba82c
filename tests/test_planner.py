"""The memory planner: its arithmetic, and its activation estimates against PyTorch's profiler on the CPU."""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from hyv_pack.hunyuan_i2v import loading, planner
from hyv_pack.hunyuan_i2v.hunyuan_video_13b import memory as memory13
from hyv_pack.hunyuan_i2v.hunyuan_video_15 import memory as memory15


def allocated_peak(fn) -> int:
    """Peak of tensor bytes allocated while ``fn`` runs (allocations minus frees, in time order)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    current = peak = 0
    for event in events:
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def hunyuan15_inputs(frames, height, width, text=600):
    return dict(
        hidden_states=torch.randn(1, 9, frames, height, width), timestep=torch.tensor([500.0]),
        encoder_hidden_states=torch.randn(1, text, 32),
        encoder_attention_mask=torch.cat([torch.ones(1, 40), torch.zeros(1, text - 40)], 1),
        encoder_hidden_states_2=torch.randn(1, memory15.GLYPH_TOKENS, 16),
        encoder_attention_mask_2=torch.zeros(1, memory15.GLYPH_TOKENS),
        image_embeds=torch.randn(1, memory15.SIGLIP_TOKENS, 24),
    )


def allocated_peak_of_model(model, frames, height, width):
    inputs = hunyuan15_inputs(frames, height, width)
    with torch.no_grad():
        return allocated_peak(lambda: model(**inputs))


@pytest.mark.parametrize("frames,height,width", [(1, 6, 8), (2, 12, 16), (3, 16, 24)])
def test_hunyuan15_step_estimate_matches_measured_peak(frames, height, width):
    """The pack's key-mask attention (and, for comparison, diffusers' own processor with its S x S mask)."""
    from hyv_pack.hunyuan_i2v.hunyuan_video_15.attention import use_key_mask_attention

    from diffusers import HunyuanVideo15Transformer3DModel

    torch.manual_seed(0)
    model = HunyuanVideo15Transformer3DModel(
        in_channels=9, out_channels=4, num_attention_heads=4, attention_head_dim=64, num_layers=2,
        num_refiner_layers=2, text_embed_dim=32, text_embed_2_dim=16, image_embed_dim=24, rope_axes_dim=(16, 24, 24),
    ).eval()
    dense = allocated_peak_of_model(model, frames, height, width)
    use_key_mask_attention(model)
    text = 600
    inputs = hunyuan15_inputs(frames, height, width, text)
    with torch.no_grad():
        measured = allocated_peak(lambda: model(**inputs))
    estimate = memory15.transformer_step_bytes(model.config, frames * height * width, text, 4)
    assert abs(estimate - measured) <= 0.15 * measured, (estimate, measured)
    # diffusers' own processor: the same plus its S x S mask
    dense_estimate = memory15.transformer_step_bytes(model.config, frames * height * width, text, 4, dense_mask=True)
    assert abs(dense_estimate - dense) <= 0.15 * dense, (dense_estimate, dense)


@pytest.mark.parametrize("frames,height,width", [(1, 12, 16), (2, 24, 32), (3, 32, 48)])
def test_hunyuan13b_step_estimate_matches_measured_peak(frames, height, width):
    from diffusers import HunyuanVideoTransformer3DModel

    torch.manual_seed(0)
    model = HunyuanVideoTransformer3DModel(
        in_channels=16, out_channels=16, num_attention_heads=4, attention_head_dim=64, num_layers=2,
        num_single_layers=2, num_refiner_layers=2, text_embed_dim=32, pooled_projection_dim=16,
        rope_axes_dim=(16, 24, 24), image_condition_type="token_replace",
    ).eval()
    text = 300
    inputs = dict(
        hidden_states=torch.randn(1, 16, frames, height, width), timestep=torch.tensor([500.0]),
        encoder_hidden_states=torch.randn(1, text, 32),
        encoder_attention_mask=torch.cat([torch.ones(1, 60), torch.zeros(1, text - 60)], 1),
        pooled_projections=torch.randn(1, 16), guidance=torch.tensor([6000.0]),
    )
    with torch.no_grad():
        measured = allocated_peak(lambda: model(**inputs))
    estimate = memory13.transformer_step_bytes(model.config, frames * height * width // 4, text, 4)
    assert abs(estimate - measured) <= 0.15 * measured, (estimate, measured)


@pytest.mark.parametrize("family", ["hunyuan_video_15", "hunyuan_video_13b"])
@pytest.mark.parametrize("tile", [None, 64, 96])
def test_decode_estimate_matches_measured_peak(family, tile):
    from diffusers import AutoencoderKLHunyuanVideo, AutoencoderKLHunyuanVideo15

    from hyv_pack.hunyuan_i2v.hunyuan_video_13b.vae import HunyuanVideoVAE
    from hyv_pack.hunyuan_i2v.hunyuan_video_15.vae import HunyuanVideo15VAE

    torch.manual_seed(0)
    if family == "hunyuan_video_15":
        vae = HunyuanVideo15VAE(AutoencoderKLHunyuanVideo15(
            latent_channels=8, block_out_channels=(16, 32, 32, 64, 64), layers_per_block=1).eval(), "random", family)
        latents = torch.randn(1, 8, 2, 6, 10)
    else:
        vae = HunyuanVideoVAE(AutoencoderKLHunyuanVideo(
            latent_channels=8, block_out_channels=(16, 32, 32, 64), layers_per_block=1, norm_num_groups=8).eval(),
            "random", family)
        latents = torch.randn(1, 8, 2, 12, 20)
    with torch.no_grad():
        measured = allocated_peak(lambda: vae.decode(latents, tile is not None, tile))
    estimate = planner.decode_estimate(vae, latents.shape, tile is not None, tile).activations
    assert abs(estimate - measured) <= 0.15 * measured, (estimate, measured)


# ---------------------------------------------------------------- arithmetic and choices

def six_block_model(dtype=torch.bfloat16):
    """A 1.5 transformer with enough blocks for block offload to matter (no forward is run)."""
    from diffusers import HunyuanVideo15Transformer3DModel

    from hyv_pack.hunyuan_i2v.hunyuan_video_15.transformer import HunyuanVideo15Transformer

    model = HunyuanVideo15Transformer3DModel(
        in_channels=9, out_channels=4, num_attention_heads=4, attention_head_dim=64, num_layers=6,
        num_refiner_layers=1, text_embed_dim=32, text_embed_2_dim=16, image_embed_dim=24, rope_axes_dim=(16, 24, 24),
    ).to(dtype)
    return HunyuanVideo15Transformer(model, "hunyuan_video_15", "i2v", "random", dtype)


def test_fp8_and_block_offload_shrink_the_weights_on_the_gpu():
    from hyv_pack.hunyuan_i2v.shared import acceleration

    model = six_block_model()
    full = planner.transformer_weights_on_gpu(model, "model", False)
    assert full == sum(p.numel() * 2 for p in model.model.parameters())
    fp8 = planner.transformer_weights_on_gpu(model, "model", True)
    block = planner.transformer_weights_on_gpu(model, "block", False)
    both = planner.transformer_weights_on_gpu(model, "block", True)
    assert full > fp8 > both and full > block > both
    acceleration.enable_fp8_storage(model.model, torch.bfloat16)
    assert planner.weight_bytes([model.model]) == pytest.approx(fp8, rel=0.01)  # what diffusers stores, give or take a bias


def test_choices_go_from_fastest_to_smallest(models15_root):
    from hyv_pack.hunyuan_i2v import stages
    from conftest import test_image

    folder = models15_root / "diffusers" / "tiny15"
    model = six_block_model(torch.float32)
    vae = loading.load_vae(folder, "fp32")
    encoders = loading.load_text_encoders(loading.TextEncoderSources(folder=folder), "fp32", device="cpu")
    image, _ = test_image(48, 64)
    cond = stages.run_encode(encoders, vae, image, "a cat", "", width=64, height=48)
    estimates = {(m, f): planner.sample_estimate(model, cond, 9, m, f) for m, f, _ in planner.SAMPLING_PRESETS}
    roomy = planner.choose_sampling(model, cond, 9, None)
    assert roomy[:2] == ("model", False)
    just = estimates[("model", True)].total / planner.HEADROOM + 1
    mode, fp8, _, why = planner.choose_sampling(model, cond, 9, int(just))
    assert (mode, fp8) == ("model", True) and "fp8" in why
    tight = estimates[("block", True)].total / planner.HEADROOM + 1
    assert planner.choose_sampling(model, cond, 9, int(tight))[:2] == ("block", True)
    none_fit = planner.choose_sampling(model, cond, 9, 1000)
    assert "lower the resolution" in none_fit[3]
    text = planner.advice(estimates[("model", False)], model, cond, 9, int(just))
    assert "fp8_storage on" in text

    latent_shape = (1, vae.latent_channels, 31, 30, 53)  # 121 frames, 480 x 848
    whole = planner.decode_estimate(vae, latent_shape, False, None)
    tiling, tile, estimate, why = planner.choose_tile(vae, latent_shape, int(whole.total / planner.HEADROOM) - 1)
    assert tiling and tile in planner.TILE_SIZES and estimate.total < whole.total and "tiles" in why
    assert planner.choose_tile(vae, latent_shape, None)[:2] == (False, None)


def test_nodes_show_the_plan_and_auto_picks_before_work(comfy_models15, monkeypatch):
    """Sample and Decode say the estimate against the free memory; 'auto' offload and tile 0 choose what fits."""
    from conftest import run_node, sample_inputs, test_image, transformer_inputs

    from hyv_pack.nodes import comfy_bridge

    texts = []
    monkeypatch.setattr(comfy_bridge, "node_text_sender", lambda node_id: texts.append)
    model, _ = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("[diffusers] tiny15", offload_mode="auto"))
    (vae,) = run_node("HunyuanI2VLoadVAE", vae_name="[diffusers] tiny15", dtype="fp32")
    from conftest import te_choice

    (encoders,) = run_node("HunyuanI2VLoadTextEncoders", **te_choice("tiny15"))
    image, _ = test_image(48, 64)
    cond, _ = run_node("HunyuanI2VEncode", text_encoders=encoders, vae=vae, image=image, prompt="a cat",
                       negative_prompt="", resolution="480p", width=64, height=48)
    fp8_fits = planner.sample_estimate(model, cond, 5, "model", True).total
    monkeypatch.setattr(comfy_bridge, "free_memory", lambda device: int(fp8_fits / planner.HEADROOM) + 1)
    (latent,) = run_node("HunyuanI2VSample", **sample_inputs(model, cond, steps=1, frames=5))
    assert any("auto picked fp8 storage" in text for text in texts)
    assert model.model.transformer_blocks[0].ff.net[2].weight.dtype == torch.float8_e4m3fn  # applied, not just said
    texts.clear()
    frames, _ = run_node("HunyuanI2VDecode", vae=vae, latent=latent, tiling=True, tile_size=0, fps=24.0)
    assert frames.shape[0] == 5 and any(text.startswith("auto:") for text in texts)
    texts.clear()
    monkeypatch.setattr(comfy_bridge, "free_memory", lambda device: 1000)
    run_node("HunyuanI2VDecode", vae=vae, latent=latent, tiling=False, tile_size=256, fps=24.0)
    assert any("does not fit" in text and "turn tiling on" in text for text in texts)


def test_time_cost_of_the_memory_options():
    """Block offload pays the bus once per pass for every weight; fp8 a pass over GPU memory; plain nothing."""
    model = six_block_model()
    weights = planner.transformer_weights_on_gpu(model, "model", False)
    assert planner.extra_seconds_per_pass(model, "model", False) == 0
    assert planner.extra_seconds_per_pass(model, "block", False) == pytest.approx(
        weights / planner.HOST_TO_GPU_BYTES_PER_S)
    assert 0 < planner.extra_seconds_per_pass(model, "model", True) < planner.extra_seconds_per_pass(model, "block", False)


def test_regional_compilation_is_an_option_off_by_default(comfy_models15, monkeypatch):
    """compile_blocks compiles each transformer block (torch.compile, regional), not the whole model."""
    from conftest import run_node, transformer_inputs

    from hyv_pack import NODE_CLASS_MAPPINGS

    spec = NODE_CLASS_MAPPINGS["HunyuanI2VLoadTransformer"].INPUT_TYPES()["required"]["compile_blocks"]
    assert spec[1]["default"] is False
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append((type(self).__name__, kw)))
    model, info = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("[diffusers] tiny15", compile_blocks=True))
    assert len(compiled) == len(model.model.transformer_blocks)
    assert {name for name, _ in compiled} == {"HunyuanVideo15TransformerBlock"}
    assert "compiled with torch.compile" in info
    compiled.clear()
    run_node("HunyuanI2VLoadTransformer", **transformer_inputs("[diffusers] tiny15"))
    assert not compiled


# ---------------------------------------------------------------- HunyuanVideo-1.5 super-resolution

SR_SIZES = [(2, 16, 24), (3, 24, 40), (5, 32, 48)]  # latent frames, height, width at the high size


def sr_transformer_and_cond(frames, height, width, text=600):
    """A small SR transformer (98 channels at full size: 3 x 4 + 2 here) and an SR conditioning at the given size."""
    from types import SimpleNamespace

    from diffusers import HunyuanVideo15Transformer3DModel

    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import super_resolution
    from hyv_pack.hunyuan_i2v.hunyuan_video_15.attention import use_key_mask_attention
    from hyv_pack.hunyuan_i2v.hunyuan_video_15.conditioning import PromptEmbedding
    from hyv_pack.hunyuan_i2v.hunyuan_video_15.transformer import HunyuanVideo15Transformer

    torch.manual_seed(0)
    model = HunyuanVideo15Transformer3DModel(
        in_channels=14, out_channels=4, num_attention_heads=4, attention_head_dim=64, num_layers=2,
        num_refiner_layers=2, text_embed_dim=32, text_embed_2_dim=16, image_embed_dim=24, rope_axes_dim=(16, 24, 24),
        use_meanflow=True,
    ).eval()
    use_key_mask_attention(model)
    loaded = HunyuanVideo15Transformer(model, "hunyuan_video_15", "sr_distilled", "test", torch.float32,
                                       resolution="720p")
    prompt = PromptEmbedding(torch.randn(1, text, 32), torch.cat([torch.ones(1, 40), torch.zeros(1, text - 40)], 1),
                             torch.randn(1, memory15.GLYPH_TOKENS, 16), torch.zeros(1, memory15.GLYPH_TOKENS))
    cond = super_resolution.SRConditioning(
        prompt, prompt, torch.randn(1, memory15.SIGLIP_TOKENS, 24), torch.randn(1, 4, 1, height, width),
        width * 16, height * 16, torch.zeros(1, 1, 1, 3), 1.0, 16, 4, low_res=torch.randn(1, 4, frames, height, width),
        resolution="720p", base_width=width * 8, base_height=height * 8,
    )
    return loaded, cond, SimpleNamespace


@pytest.mark.parametrize("frames,height,width", SR_SIZES)
def test_super_resolution_sampling_estimate_matches_measured_peak(frames, height, width):
    """The SR release's whole sampling loop (one step), its 98-channel inputs and both condition copies included."""
    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import family
    from hyv_pack.hunyuan_i2v.shared.sampling import SamplingSettings

    model, cond, _ = sr_transformer_and_cond(frames, height, width)
    settings = SamplingSettings(seed=0, steps=1, num_frames=cond.num_frames, flow_shift=2.0, cfg_scale=1.0)
    with torch.no_grad():
        measured = allocated_peak(lambda: family.sample(model, cond, settings, "cpu"))
    estimate = planner.sample_estimate(model, cond, cond.num_frames, offload_mode="model")
    assert abs(estimate.activations - measured) <= 0.15 * measured, (estimate.activations, measured)


@pytest.mark.parametrize("kind", ["720p", "1080p"])
@pytest.mark.parametrize("frames,height,width", SR_SIZES)
def test_super_resolution_prepare_estimate_matches_measured_peak(kind, frames, height, width):
    """The Super-Resolution node: the latent upsampler at the high size, and the VAE encoding the start image."""
    from types import SimpleNamespace

    from diffusers import AutoencoderKLHunyuanVideo15

    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import upsampler as up

    torch.manual_seed(0)
    network = up.Upsampler720p(32, 32, 64, 3) if kind == "720p" else up.Upsampler1080p(32, 32, (64, 128), 1)
    upsampler = up.LatentUpsampler(network.eval(), kind, "test")
    vae_model = AutoencoderKLHunyuanVideo15(block_out_channels=(32, 64, 64, 64, 64), latent_channels=32,
                                            layers_per_block=1).eval()
    vae = SimpleNamespace(model=vae_model, spatial_ratio=16, family="hunyuan_video_15", dtype=torch.float32)
    low = torch.randn(1, 32, frames, height // 2, width // 2)
    pixels = torch.randn(1, 3, 1, height * 16, width * 16)
    with torch.no_grad():
        measured = max(allocated_peak(lambda: up.upsample_latent(low, upsampler, height * 16, width * 16)),
                       allocated_peak(lambda: vae_model.encode(pixels)))
    estimate = planner.super_resolution_estimate(vae, upsampler, None, tuple(low.shape), width * 16, height * 16)
    assert abs(estimate.activations - measured) <= 0.15 * measured, (estimate.activations, measured)
