"""A widget's range is exactly what works: its minimum and maximum run on both families' tiny models.

The ranges are read from the nodes' INPUT_TYPES, so a widget whose range
changes is tested at its new ends. The command line accepts the same ranges
and defaults (tested at the bottom).
"""

from types import SimpleNamespace

import pytest
import torch
from conftest import encode_inputs, run_node, sample_inputs, te_choice, test_image, transformer_inputs

from hyv_pack import NODE_CLASS_MAPPINGS as NODES

FOLDERS = {"hunyuan_video_13b": ("models_root", "tiny_v2"), "hunyuan_video_15": ("models15_root", "tiny15")}
SMALLEST_RESOLUTION = {"hunyuan_video_13b": "360p", "hunyuan_video_15": "480p"}


def widget(node: str, name: str) -> dict:
    spec = NODES[node].INPUT_TYPES()["required"][name]
    return spec[1] if len(spec) > 1 else {}


@pytest.fixture(scope="module", params=list(FOLDERS))
def parts(request):
    """The family's tiny model, VAE and text encoders, loaded through the nodes, and a 16 x 16 conditioning."""
    root_fixture, folder = FOLDERS[request.param]
    root = request.getfixturevalue(root_fixture)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HUNYUAN_I2V_MODELS", str(root))
        (model, _) = run_node("HunyuanI2VLoadTransformer", **transformer_inputs(f"[diffusers] {folder}"))
        (vae,) = run_node("HunyuanI2VLoadVAE", vae_name=f"[diffusers] {folder}", dtype="fp32")
        (encoders,) = run_node("HunyuanI2VLoadTextEncoders", **te_choice(folder))
    image, _ = test_image(32, 32)
    cond, _ = run_node("HunyuanI2VEncode", **encode_inputs(encoders, vae, image, width=16, height=16,
                                                           negative_prompt="blurry"))
    return SimpleNamespace(family=request.param, root=root, model=model, vae=vae, encoders=encoders, image=image,
                           cond=cond)


def sample(parts, cond=None, **settings):
    settings = {"steps": 1, "frames": 1, "cfg_scale": 1.0, **settings}  # CFG off, but where it is the widget tested
    (latent,) = run_node("HunyuanI2VSample", **sample_inputs(parts.model, cond or parts.cond, **settings))
    assert torch.isfinite(latent["samples"]).all()
    return latent


SAMPLE_WIDGETS = ["seed", "steps", "frames", "flow_shift", "embedded_guidance", "cfg_scale", "cache_threshold"]


@pytest.mark.parametrize("end", ["min", "max"])
@pytest.mark.parametrize("name", SAMPLE_WIDGETS)
def test_sample_widget_ends_run(parts, name, end):
    value = widget("HunyuanI2VSample", name)[end]
    extra = {"cache": "first block cache", "steps": 3} if name == "cache_threshold" else {}
    latent = sample(parts, **{**extra, name: value})
    if name == "frames":
        assert latent["samples"].shape[2] == (value - 1) // 4 + 1


@pytest.mark.parametrize("case", ["from resolution", "widest", "tallest"])
def test_encode_size_ends_run(parts, case):
    low, high = widget("HunyuanI2VEncode", "width")["min"], widget("HunyuanI2VEncode", "width")["max"]
    assert low == 0 and widget("HunyuanI2VEncode", "height")["max"] == high
    step = widget("HunyuanI2VEncode", "width")["step"]
    width, height = {"from resolution": (low, low), "widest": (high, step), "tallest": (step, high)}[case]
    image = parts.image if case == "from resolution" else test_image(8, 8)[0]
    cond, start = run_node("HunyuanI2VEncode", **encode_inputs(
        parts.encoders, parts.vae, image, width=width, height=height, resolution=SMALLEST_RESOLUTION[parts.family]))
    if case == "from resolution":  # a bucket size, as every real run uses: sampling it here would only be slow
        assert start.shape[1] % step == 0 and start.shape[2] % step == 0 and start.shape[1] * start.shape[2] > 300**2
        return
    latent = sample(parts, cond=cond)
    frames, _ = run_node("HunyuanI2VDecode", vae=parts.vae, latent=latent, tiling=True, tile_size=256, fps=24.0)
    assert (frames.shape[2], frames.shape[1]) == (width, height)


@pytest.fixture(scope="module")
def latent_to_decode(parts):
    """A latent of a 128 x 96 video, larger than the smallest tile, so tiling has work to do."""
    cond, _ = run_node("HunyuanI2VEncode", **encode_inputs(parts.encoders, parts.vae, parts.image, width=128,
                                                           height=96))
    return sample(parts, cond=cond, frames=5)


@pytest.mark.parametrize("end", ["min", "max"])
@pytest.mark.parametrize("name", ["tile_size", "fps"])
def test_decode_widget_ends_run(parts, latent_to_decode, name, end):
    settings = {"tiling": True, "tile_size": 256, "fps": 24.0, name: widget("HunyuanI2VDecode", name)[end]}
    frames, _ = run_node("HunyuanI2VDecode", vae=parts.vae, latent=latent_to_decode, **settings)
    assert frames.shape == (5, 96, 128, 3) and torch.isfinite(frames).all()


@pytest.mark.parametrize("end", ["min", "max"])
def test_lora_strength_ends_run(parts, end):
    from safetensors.torch import save_file

    if parts.family != "hunyuan_video_13b":
        pytest.skip("one family is enough for a loader widget")
    (parts.root / "loras").mkdir(exist_ok=True)
    path = parts.root / "loras" / "range_test.safetensors"
    g = torch.Generator().manual_seed(0)
    save_file({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": torch.randn(2, 20, generator=g),
               "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight": torch.randn(60, 2, generator=g)}, str(path))
    strength = widget_with_models("HunyuanI2VLoRA", "strength", parts.root)[end]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HUNYUAN_I2V_MODELS", str(parts.root))
        (model,) = run_node("HunyuanI2VLoRA", model=parts.model, lora_name="range_test.safetensors", strength=strength)
    (latent,) = run_node("HunyuanI2VSample", **sample_inputs(model, parts.cond, steps=1, frames=1))
    assert latent["samples"].shape[2] == 1


def widget_with_models(node, name, root):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HUNYUAN_I2V_MODELS", str(root))
        return widget(node, name)


# ---------------------------------------------------------------- the command line has the same ranges

CLI_WIDGETS = {
    "seed": ("HunyuanI2VSample", "seed"), "steps": ("HunyuanI2VSample", "steps"),
    "frames": ("HunyuanI2VSample", "frames"), "flow_shift": ("HunyuanI2VSample", "flow_shift"),
    "guidance": ("HunyuanI2VSample", "embedded_guidance"), "cfg_scale": ("HunyuanI2VSample", "cfg_scale"),
    "cache_threshold": ("HunyuanI2VSample", "cache_threshold"), "width": ("HunyuanI2VEncode", "width"),
    "height": ("HunyuanI2VEncode", "height"), "tile_size": ("HunyuanI2VDecode", "tile_size"),
    "fps": ("HunyuanI2VDecode", "fps"),
}


@pytest.mark.parametrize("name", sorted(CLI_WIDGETS))
def test_command_line_accepts_exactly_the_widget_range(name):
    from hyv_pack.hunyuan_i2v.cli.options import PER_VIDEO_BY_NAME, SettingError

    setting, spec = PER_VIDEO_BY_NAME[name], widget(*CLI_WIDGETS[name])
    assert setting.default == spec["default"]
    assert setting.parse(spec["min"]) == spec["min"] and setting.parse(spec["max"]) == spec["max"]
    outside = 1 if isinstance(spec["min"], int) else 0.001
    if name == "frames" or name in ("width", "height"):
        outside = spec.get("step", 1)
    for value in (spec["min"] - outside, spec["max"] + outside):
        with pytest.raises(SettingError):
            setting.parse(value)


def test_command_line_choices_and_defaults_match_the_nodes():
    from hyv_pack.hunyuan_i2v.cli.options import LORA_STRENGTH_RANGE, PER_VIDEO_BY_NAME

    encode = NODES["HunyuanI2VEncode"].INPUT_TYPES()["required"]
    assert all(PER_VIDEO_BY_NAME["resolution"].parse(choice) == choice for choice in encode["resolution"][0])
    assert all(PER_VIDEO_BY_NAME["cache"].parse(choice) == choice
               for choice in NODES["HunyuanI2VSample"].INPUT_TYPES()["required"]["cache"][0])
    assert PER_VIDEO_BY_NAME["negative_prompt"].default == encode["negative_prompt"][1]["default"]
    assert PER_VIDEO_BY_NAME["resolution"].default == encode["resolution"][1]["default"]
    sample_spec = NODES["HunyuanI2VSample"].INPUT_TYPES()["required"]
    assert PER_VIDEO_BY_NAME["cache"].default == sample_spec["cache"][1]["default"]
    assert PER_VIDEO_BY_NAME["stability"].default == sample_spec["i2v_stability"][1]["default"]
    assert PER_VIDEO_BY_NAME["tiling"].default == widget("HunyuanI2VDecode", "tiling")["default"]
    lora = NODES["HunyuanI2VLoRA"].INPUT_TYPES()["required"]["strength"][1]
    assert LORA_STRENGTH_RANGE == (lora["min"], lora["max"])
