"""HunyuanVideo-1.5 in the shared nodes: what the loader says, defaults per release, caches, LoRAs, bad input."""

import json

import pytest
import torch
from conftest import run_node, sample_inputs, save_file_with_config, te_choice, test_image, transformer_inputs

from hyv_pack.hunyuan_i2v import loading, stages
from hyv_pack.hunyuan_i2v.errors import ModelFileError, UserInputError
from hyv_pack.hunyuan_i2v.hunyuan_video_15 import conditioning
from hyv_pack.hunyuan_i2v.shared import acceleration
from hyv_pack.hunyuan_i2v.shared.sampling import SamplingSettings

WIDTH, HEIGHT = 64, 48


@pytest.fixture(scope="module")
def graph15(models15_root):
    folder = models15_root / "diffusers" / "tiny15"
    model = loading.load_model(folder, "fp32")
    the_vae = loading.load_vae(folder, "fp32")
    encoders = loading.load_text_encoders(loading.TextEncoderSources(folder=folder), "fp32", device="cpu")
    image, _ = test_image(HEIGHT, WIDTH)
    cond = stages.run_encode(encoders, the_vae, image, 'a sign that says "HI"', "blurry", width=WIDTH, height=HEIGHT)
    return folder, model, the_vae, encoders, cond


def load(models15_root, name, **options):
    return run_node("HunyuanI2VLoadTransformer", **transformer_inputs(name, **options))


# ---------------------------------------------------------------- what the loader reads and says

def test_info_says_family_release_and_what_the_file_cannot_tell(comfy_models15):
    _, info = load(comfy_models15, "tiny15_comfy.safetensors")
    assert "HunyuanVideo-1.5 I2V from 'tiny15_comfy.safetensors'" in info
    assert "resolution not stored in the file" in info and "cannot tell whether it is CFG- or step-distilled" in info
    _, info = load(comfy_models15, "tiny15_comfy.safetensors", variant="i2v cfg-distilled")
    assert "I2V CFG-distilled" in info and "from the loader's variant setting" in info
    _, info = load(comfy_models15, "[diffusers] tiny15_meanflow")
    assert "step-distilled, read from the weights" in info and "MeanFlow" in info


def test_metadata_tells_the_release(comfy_models15, tmp_path):
    from safetensors.torch import load_file

    state = load_file(str(comfy_models15 / "diffusion_models" / "tiny15_comfy.safetensors"))
    path = comfy_models15 / "diffusion_models" / "tiny15_480p_cfg.safetensors"
    save_file_with_config(state, path, {"rope_axes_dim": [4, 8, 8], "resolution": "480p", "distillation": "cfg_distilled"})
    model, info = load(comfy_models15, path.name)
    assert "480p release" in info and "from the file's metadata" in info
    settings, _ = stages.resolve_settings(model, SamplingSettings(num_frames=5, steps=0, flow_shift=0, cfg_scale=0))
    assert (settings.steps, settings.flow_shift, settings.cfg_scale) == (50, 5.0, 1.0)


@pytest.mark.parametrize("variant,resolution,expected", [
    ("i2v", "480p", (50, 5.0, 6.0)),
    ("i2v", "720p", (50, 7.0, 6.0)),
    ("cfg_distilled", "720p", (50, 7.0, 1.0)),
    ("step_distilled", "480p", (8, 7.0, 1.0)),
])
def test_sampler_defaults_follow_the_release(graph15, variant, resolution, expected):
    _, model, _, _, _ = graph15
    release = model.__class__(model.model, model.family, variant, model.source, model.compute_dtype, resolution=resolution)
    settings, notes = stages.resolve_settings(release, SamplingSettings(num_frames=5, steps=0, flow_shift=0,
                                                                        embedded_guidance=0, cfg_scale=0))
    assert (settings.steps, settings.flow_shift, settings.cfg_scale) == expected
    # what the user sets wins
    settings, _ = stages.resolve_settings(release, SamplingSettings(num_frames=5, steps=3, flow_shift=2.5, cfg_scale=4))
    assert (settings.steps, settings.flow_shift, settings.cfg_scale) == (3, 2.5, 4)


def test_settings_1_5_ignores_are_said(graph15):
    _, model, _, _, _ = graph15
    _, notes = stages.resolve_settings(model, SamplingSettings(num_frames=5, embedded_guidance=6.0, i2v_stability=False))
    text = " ".join(notes)
    assert "embedded_guidance is ignored" in text and "i2v_stability is ignored" in text


# ---------------------------------------------------------------- conditioning

def test_glyph_text_is_read_and_changes_the_video(graph15):
    folder, model, the_vae, encoders, cond = graph15
    assert conditioning.glyph_text('a sign "HI" and “YO” and "HI"') == 'Text "HI". Text "YO". '
    assert conditioning.glyph_text("no quotes") is None
    assert cond.positive.glyph_mask.sum() > 0 and cond.negative.glyph_mask.sum() == 0
    image, _ = test_image(HEIGHT, WIDTH)
    plain = stages.run_encode(encoders, the_vae, image, "a sign that says HI", "blurry", width=WIDTH, height=HEIGHT)
    settings = SamplingSettings(seed=1, steps=2, num_frames=5, cfg_scale=1.0)
    a = stages.run_sample(model, cond, settings).latent["samples"]
    b = stages.run_sample(model, plain, settings).latent["samples"]
    assert not torch.allclose(a, b)


def test_crop_is_measured_from_the_tokenizer(graph15):
    _, _, _, encoders, _ = graph15
    crop = conditioning.system_prefix_length(encoders.tokenizer)
    ids = encoders.tokenizer.apply_chat_template(
        [{"role": "system", "content": conditioning.defaults.SYSTEM_MESSAGE}, {"role": "user", "content": "a cat"}],
        add_generation_prompt=True, tokenize=True, return_dict=True,
    )["input_ids"]
    user = encoders.tokenizer.decode(ids[crop:])
    assert user.startswith("a cat") and "You are a helpful" not in user


def test_video_size_from_the_image_and_release(graph15):
    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import family

    image, _ = test_image(720, 1280)
    assert family.video_size(image, "480p", 0, 0) == (848, 480)
    assert family.video_size(image, "720p", 0, 0) == (1280, 720)
    with pytest.raises(UserInputError, match="480p and 720p"):
        family.video_size(image, "540p", 0, 0)
    with pytest.raises(UserInputError, match="not a multiple of 16"):
        family.video_size(image, "480p", 600, 40)


# ---------------------------------------------------------------- speed and memory

def test_first_block_cache_runs_on_1_5_and_is_removed_after(graph15):
    """diffusers 0.42 does not register the 1.5 block; the pack does, without forking the model."""
    from diffusers.hooks._helpers import TransformerBlockRegistry
    from diffusers.models.transformers.transformer_hunyuan_video15 import HunyuanVideo15TransformerBlock

    _, model, _, _, cond = graph15
    settings = SamplingSettings(seed=3, steps=10, num_frames=5, cfg_scale=1.0, flow_shift=5.0)
    calls = []
    handle = model.model.transformer_blocks[-1].ff.register_forward_hook(lambda *a: calls.append(1))
    baseline = stages.run_sample(model, cond, settings).latent["samples"]
    full = len(calls)
    calls.clear()
    cached = stages.run_sample(model, cond, settings, cache="first block cache", cache_threshold=1.0).latent["samples"]
    handle.remove()
    assert full == 10 and len(calls) < full
    assert not model.model.is_cache_enabled
    assert torch.isfinite(cached).all() and not torch.equal(cached, baseline)
    assert HunyuanVideo15TransformerBlock in TransformerBlockRegistry._registry
    acceleration.register_hunyuan15_blocks()  # a second registration is a no-op


def test_taylorseer_and_fp8_run_on_1_5(graph15):
    folder, model, _, _, cond = graph15
    settings = SamplingSettings(seed=3, steps=10, num_frames=5, cfg_scale=6.0, flow_shift=5.0)
    calls = []  # TaylorSeer predicts attention outputs instead of computing them on most steps
    handle = model.model.transformer_blocks[-1].attn.to_q.register_forward_hook(lambda *a: calls.append(1))
    assert torch.isfinite(stages.run_sample(model, cond, settings, cache="taylorseer").latent["samples"]).all()
    handle.remove()
    assert len(calls) < 2 * 10
    fp8 = loading.load_model(folder, "fp32", fp8_storage=True)
    a = stages.run_sample(fp8, cond, settings).latent["samples"]
    b = stages.run_sample(model, cond, settings).latent["samples"]
    assert fp8.model.transformer_blocks[0].ff.net[2].weight.dtype == torch.float8_e4m3fn
    assert (a - b).abs().max() < 0.2 * b.abs().max()


def test_text_encoder_fp8_storage(models15_root):
    folder = models15_root / "diffusers" / "tiny15"
    encoders = loading.load_text_encoders(loading.TextEncoderSources(folder=folder), "fp32", fp8_storage=True,
                                          device="cpu")
    assert encoders.text_encoder.layers[0].mlp.gate_proj.weight.dtype == torch.float8_e4m3fn
    assert encoders.run_on_cpu


def test_attention_without_mask_support_falls_back_for_1_5(graph15):
    """'sdpa flash' takes no mask, so its sibling 'sdpa efficient' is tried, which this CPU lacks: a sentence at load
    (tests/test_attention_choices.py covers every choice)."""
    folder, _, _, _, _ = graph15
    with pytest.raises(UserInputError, match="'sdpa flash' takes no mask.*'sdpa efficient' cannot run on cpu"):
        loading.load_model(folder, "fp32", attention="sdpa flash")


# ---------------------------------------------------------------- LoRA

def test_original_name_lora_equals_merged_weights(graph15, tmp_path):
    """A LoRA in original names on fused q|k|v (ComfyUI layout) and the final layer: adapters == merged weights."""
    from safetensors.torch import save_file

    folder, model, _, _, cond = graph15
    hidden = model.model.config.num_attention_heads * model.model.config.attention_head_dim
    rank = 2
    gen = torch.Generator().manual_seed(0)
    lora = {
        "diffusion_model.double_blocks.0.img_attn_qkv.lora_A.weight": torch.randn(rank, hidden, generator=gen) * 0.1,
        "diffusion_model.double_blocks.0.img_attn_qkv.lora_B.weight": torch.randn(3 * hidden, rank, generator=gen) * 0.1,
        "diffusion_model.final_layer.adaLN_modulation.1.lora_A.weight": torch.randn(rank, hidden, generator=gen) * 0.1,
        "diffusion_model.final_layer.adaLN_modulation.1.lora_B.weight": torch.randn(2 * hidden, rank, generator=gen) * 0.1,
    }
    path = tmp_path / "tiny15_lora.safetensors"
    save_file(lora, str(path))
    settings = SamplingSettings(seed=2, steps=2, num_frames=5, cfg_scale=1.0, flow_shift=5.0)
    with_lora = stages.run_sample(loading.with_lora(model, path, 1.0), cond, settings).latent["samples"]
    plain = stages.run_sample(model, cond, settings).latent["samples"]

    merged = loading.load_model(folder, "fp32")
    blocks = merged.model.transformer_blocks[0].attn
    delta = lora["diffusion_model.double_blocks.0.img_attn_qkv.lora_B.weight"] @ lora[
        "diffusion_model.double_blocks.0.img_attn_qkv.lora_A.weight"]
    for name, piece in zip(("to_q", "to_k", "to_v"), delta.chunk(3)):
        getattr(blocks, name).weight.data += piece
    final = lora["diffusion_model.final_layer.adaLN_modulation.1.lora_B.weight"] @ lora[
        "diffusion_model.final_layer.adaLN_modulation.1.lora_A.weight"]
    shift, scale = final.chunk(2)
    merged.model.norm_out.linear.weight.data += torch.cat([scale, shift])
    expected = stages.run_sample(merged, cond, settings).latent["samples"]
    assert not torch.allclose(with_lora, plain)
    assert (with_lora - expected).abs().max() < 1e-4


# ---------------------------------------------------------------- bad input: one clear sentence each

def test_wrong_file_in_each_slot(comfy_models15):
    with pytest.raises(ModelFileError, match="HunyuanVideo-1.5 VAE.*needs the transformer"):
        load(comfy_models15, "../vae/tiny15_vae.safetensors")
    with pytest.raises(ModelFileError, match="Qwen2.5-VL.*needs the VAE"):
        run_node("HunyuanI2VLoadVAE", vae_name="../text_encoders/tiny_qwen25.safetensors", dtype="fp32")
    base = dict(text_encoder="tiny_qwen25.safetensors", vision="tiny_siglip.safetensors",
                text_encoder_2="tiny_byt5.safetensors", dtype="fp32", fp8_storage=False, device="cpu")
    with pytest.raises(ModelFileError, match="ByT5.*needs sigclip"):
        run_node("HunyuanI2VLoadTextEncoders", **(base | {"vision": "../text_encoders/tiny_byt5.safetensors"}))
    with pytest.raises(ModelFileError, match="SigLIP.*needs byt5"):
        run_node("HunyuanI2VLoadTextEncoders", **(base | {"text_encoder_2": "../clip_vision/tiny_siglip.safetensors"}))
    with pytest.raises(ModelFileError, match="ByT5.*needs the language model"):
        run_node("HunyuanI2VLoadTextEncoders", **(base | {"text_encoder": "tiny_byt5.safetensors"}))


def test_truncated_1_5_file(comfy_models15):
    data = (comfy_models15 / "diffusion_models" / "tiny15_comfy.safetensors").read_bytes()
    cut = comfy_models15 / "diffusion_models" / "tiny15_cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated.*Download 'tiny15_cut.safetensors' again"):
        load(comfy_models15, cut.name)


def test_families_cannot_be_mixed(models_root, graph15):
    """A 1.5 VAE or text encoder with the 13 B model (or the reverse) is refused before any work, naming the file."""
    _, model15, vae15, encoders15, cond15 = graph15
    folder13 = models_root / "diffusers" / "tiny_v2"
    model13 = loading.load_model(folder13, "fp32")
    vae13 = loading.load_vae(folder13, "fp32")
    image, _ = test_image(HEIGHT, WIDTH)
    with pytest.raises(ModelFileError, match="the VAE is HunyuanVideo-I2V \\(13 B\\).*hunyuanvideo15_vae_fp16"):
        stages.run_encode(encoders15, vae13, image, "a cat", width=WIDTH, height=HEIGHT)
    with pytest.raises(ModelFileError, match="conditioning.*HunyuanVideo-1.5.*model is HunyuanVideo-I2V \\(13 B\\).*llava_llama3"):
        stages.run_sample(model13, cond15, SamplingSettings(num_frames=5, steps=1))
    latent = stages.run_sample(model15, cond15, SamplingSettings(num_frames=5, steps=1, cfg_scale=1)).latent
    with pytest.raises(UserInputError, match="decode with vae/hunyuanvideo15_vae_fp16"):
        stages.run_decode(vae13, latent)


def test_frames_and_sizes_are_checked(graph15):
    _, model, the_vae, encoders, cond = graph15
    with pytest.raises(UserInputError, match="4n\\+1.*Use 5 or 9"):
        stages.run_sample(model, cond, SamplingSettings(num_frames=7, steps=1))
    image, _ = test_image(HEIGHT, WIDTH)
    with pytest.raises(UserInputError, match="width 72 is not a multiple of 16"):
        stages.run_encode(encoders, the_vae, image, "a cat", width=72, height=48)


def test_text_to_video_folder_is_refused(models15_root, tmp_path):
    import shutil

    folder = tmp_path / "t2v"
    shutil.copytree(models15_root / "diffusers" / "tiny15", folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "HunyuanVideo15Pipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFileError, match="HunyuanVideo-1.5 text-to-video model.*HunyuanVideo15ImageToVideoPipeline"):
        loading.load_model(folder, "fp32")


def test_tokenizer_without_chat_template_gives_the_same_tokens(graph15):
    """ComfyUI's bundled Qwen tokenizer may come without a chat template: the pack writes Qwen's format itself."""
    import copy

    _, _, _, encoders, _ = graph15
    bare = copy.deepcopy(encoders.tokenizer)
    bare.chat_template = None
    options = dict(padding="max_length", max_length=200, truncation=True, return_tensors="pt")
    for prompt in ("a cat", ""):
        assert torch.equal(conditioning._tokenize(bare, prompt, **options)["input_ids"],
                           conditioning._tokenize(encoders.tokenizer, prompt, **options)["input_ids"])
    assert conditioning.system_prefix_length(bare) == conditioning.system_prefix_length(encoders.tokenizer)


def test_vae_tiling_uses_the_tile_size_and_matches_untiled(models15_root):
    """1.5's VAE names its tile settings differently from the 13 B one; decode in 64 px tiles ~ one piece."""
    folder = models15_root / "diffusers" / "tiny15"
    the_vae = loading.load_vae(folder, "fp32")
    latent = {"samples": torch.randn(1, the_vae.latent_channels, 1, 6, 8, generator=torch.Generator().manual_seed(0))}
    whole = stages.run_decode(the_vae, latent, tiling=False)
    tiled = stages.run_decode(the_vae, latent, tiling=True, tile_size=64)
    assert tiled.shape == whole.shape == (1, 96, 128, 3)
    with the_vae.tiling(True, 64), torch.no_grad():  # diffusers' own tiled decode in 64 px tiles: the same frames
        assert the_vae.model.use_tiling and the_vae.model.tile_sample_min_height == 64
        assert the_vae.model.tile_latent_min_height == 4
        direct = the_vae.model.tiled_decode(latent["samples"])
    direct = (direct / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 3, 0)
    assert torch.allclose(tiled, direct, atol=1e-6) and not torch.allclose(tiled, whole, atol=1e-3)


def test_block_offload_hooks_give_the_same_video(graph15):
    """Block-level group offloading (diffusers' hooks) on the 1.5 transformer leaves the result unchanged."""
    folder, model, _, _, cond = graph15
    settings = SamplingSettings(seed=4, steps=2, num_frames=5, cfg_scale=6.0, flow_shift=5.0)
    expected = stages.run_sample(model, cond, settings).latent["samples"]
    offloaded = loading.load_model(folder, "fp32", offload_mode="block")
    offloaded.model.enable_group_offload(onload_device=torch.device("cpu"), offload_device=torch.device("cpu"),
                                         offload_type="block_level", num_blocks_per_group=1)
    assert acceleration.has_group_offload(offloaded.model) and stages.gpu_bytes_for_sample(offloaded) == 0
    assert torch.allclose(stages.run_sample(offloaded, cond, settings).latent["samples"], expected, atol=1e-6)


def test_kohya_lora_for_1_5(graph15, tmp_path):
    """kohya names (lora_down/lora_up/alpha) on Tencent's split q, k, v: alpha / rank is folded in."""
    from safetensors.torch import save_file

    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import lora_keys

    _, model, _, _, _ = graph15
    hidden = model.model.config.num_attention_heads * model.model.config.attention_head_dim
    down, up = torch.randn(4, hidden), torch.randn(hidden, 4)
    state = {"lora_unet_double_blocks_1_txt_attn_k.lora_down.weight": down,
             "lora_unet_double_blocks_1_txt_attn_k.lora_up.weight": up,
             "lora_unet_double_blocks_1_txt_attn_k.alpha": torch.tensor(2.0),
             "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.randn(4, 8)}
    converted, skipped = lora_keys.to_diffusers(state, model.model)
    assert set(converted) == {"transformer_blocks.1.attn.add_k_proj.lora_A.weight",
                              "transformer_blocks.1.attn.add_k_proj.lora_B.weight"}
    assert torch.allclose(converted["transformer_blocks.1.attn.add_k_proj.lora_B.weight"], up * 0.5)
    assert skipped == ["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"]
    path = tmp_path / "kohya15.safetensors"
    save_file({k: v for k, v in state.items() if "lora_te" not in k}, str(path))
    settings = SamplingSettings(seed=2, steps=1, num_frames=5, cfg_scale=1.0, flow_shift=5.0)
    _, _, _, _, cond = graph15
    assert torch.isfinite(stages.run_sample(loading.with_lora(model, path, 0.5), cond, settings).latent["samples"]).all()
