"""HunyuanVideo-1.5's latent upsamplers: both kinds, in ComfyUI's single files and Tencent's release folders, written
to disk with tiny random weights and loaded through the code users run; the math against an independent functional
rewrite of Tencent's classes, and (opt-in) against ComfyUI's and Tencent's own classes on the same weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from hyv_pack.hunyuan_i2v import loading
from hyv_pack.hunyuan_i2v.errors import ModelFileError, UserInputError
from hyv_pack.hunyuan_i2v.hunyuan_video_15 import upsampler as up

CHANNELS = 8  # the real files take 32; small keeps the tests fast, the code reads it from the tensors
HIDDEN, BLOCKS = 12, 2  # 720p kind
STAGES, RES_BLOCKS = (16, 24), 2  # 1080p kind: the first stage is twice the input (repeat 2), the second widens;
# 2 is also the one ResNet depth ComfyUI's loader can build (it does not read it from the file)
LOW, SR = (5, 7), (8, 11)  # latent sizes: low resolution and SR (a non-integer factor, as 848x480 -> 1280x720)
HERE = Path(__file__).resolve().parent


def conv(out_channels, in_channels, kernel=3, gen=None):
    fan_in = in_channels * kernel ** 3
    return (torch.randn(out_channels, in_channels, kernel, kernel, kernel, generator=gen) / fan_in ** 0.5,
            torch.randn(out_channels, generator=gen) * 0.1)


def original_state(kind: str, seed: int = 0, channels: int = CHANNELS) -> dict:
    """Random weights under Tencent's (= ComfyUI's file) names, shaped as its classes make them, for latents of
    ``channels`` channels (the 1080p kind's first stage must be a multiple of it)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}

    def add(name, out_channels, in_channels, kernel=3, inner=".conv"):
        state[f"{name}{inner}.weight"], state[f"{name}{inner}.bias"] = conv(out_channels, in_channels, kernel, gen)

    if kind == "720p":
        add("in_conv", HIDDEN, channels)
        for i in range(BLOCKS):
            for j in (0, 2, 4):
                add(f"blocks.{i}.block.{j}", HIDDEN, HIDDEN)
        add("out_conv", channels, HIDDEN)
        return state
    add("conv_in", STAGES[0], channels)
    width = STAGES[0]
    for i, stage in enumerate(STAGES):
        for j in range(RES_BLOCKS + 1):
            name = f"up.{i}.block.{j}"
            state[f"{name}.norm1.gamma"] = 1 + 0.1 * torch.randn(width, 1, 1, 1, generator=gen)
            add(f"{name}.conv1", stage, width)
            state[f"{name}.norm2.gamma"] = 1 + 0.1 * torch.randn(stage, 1, 1, 1, generator=gen)
            add(f"{name}.conv2", stage, stage)
            if width != stage:
                add(f"{name}.nin_shortcut", stage, width, kernel=1, inner="")
            width = stage
    state["norm_out.gamma"] = 1 + 0.1 * torch.randn(width, 1, 1, 1, generator=gen)
    add("conv_out", channels, width)
    return state


def tencent_config(kind: str, **extra) -> dict:
    if kind == "720p":
        config = {"_class_name": "SRTo720pUpsampler", "in_channels": CHANNELS, "out_channels": CHANNELS,
                  "hidden_channels": HIDDEN, "num_blocks": BLOCKS, "global_residual": False}
    else:
        config = {"_class_name": "SRTo1080pUpsampler", "z_channels": CHANNELS, "out_channels": CHANNELS,
                  "block_out_channels": list(STAGES), "num_res_blocks": RES_BLOCKS, "is_residual": False}
    return {**config, "_diffusers_version": "0.35.0", **extra}


def write_comfyui(root: Path, kind: str, state=None, dtype=torch.float16) -> Path:
    """ComfyUI's latent_upscale_models/hunyuanvideo15_latent_upsampler_<kind>.safetensors (half precision, as
    ComfyUI's repackaged files store most weights)."""
    path = root / "latent_upscale_models" / up.COMFYUI_FILES[kind]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype).contiguous() for k, v in (state or original_state(kind)).items()}, str(path))
    return path


def write_tencent(root: Path, kind: str, state=None, **config) -> Path:
    """Tencent's release: <root>/upsampler/<kind>_sr_distilled/{config.json, diffusion_pytorch_model.safetensors}."""
    folder = root / "upsampler" / up.TENCENT_FOLDERS[kind]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(tencent_config(kind, **config)))
    save_file({k: v.contiguous() for k, v in (state or original_state(kind)).items()}, str(folder / up.WEIGHTS_FILE))
    return folder


# ------------------------------------------------------------ Tencent's math, rewritten functionally (no modules)
def causal_conv(x, state, name):
    x = F.pad(x, (1, 1, 1, 1, 2, 0), mode="replicate")  # replicate: 1 px around, 2 frames before (causal)
    return F.conv3d(x, state[f"{name}.weight"], state[f"{name}.bias"])


def rms_norm(x, gamma):
    return F.normalize(x, dim=1) * x.shape[1] ** 0.5 * gamma


def reference_forward(kind: str, state: dict, x: torch.Tensor, global_residual: bool = False) -> torch.Tensor:
    if kind == "720p":
        y = causal_conv(x, state, "in_conv.conv")
        for i in range(BLOCKS):
            h = F.silu(causal_conv(y, state, f"blocks.{i}.block.0.conv"))
            h = F.silu(causal_conv(h, state, f"blocks.{i}.block.2.conv"))
            y = y + causal_conv(h, state, f"blocks.{i}.block.4.conv")
        y = causal_conv(y, state, "out_conv.conv")
        return y + x if global_residual else y
    h = causal_conv(x, state, "conv_in.conv") + x.repeat_interleave(STAGES[0] // CHANNELS, dim=1)
    for i in range(len(STAGES)):
        for j in range(RES_BLOCKS + 1):
            name = f"up.{i}.block.{j}"
            r = causal_conv(F.silu(rms_norm(h, state[f"{name}.norm1.gamma"])), state, f"{name}.conv1.conv")
            r = causal_conv(F.silu(rms_norm(r, state[f"{name}.norm2.gamma"])), state, f"{name}.conv2.conv")
            if f"{name}.nin_shortcut.weight" in state:
                h = F.conv3d(h, state[f"{name}.nin_shortcut.weight"], state[f"{name}.nin_shortcut.bias"])
            h = h + r
    return causal_conv(F.silu(rms_norm(h, state["norm_out.gamma"])), state, "conv_out.conv")


def resize_per_frame(latent, size):
    return torch.stack([F.interpolate(latent[:, :, f], size=size, mode="bilinear", align_corners=False)
                        for f in range(latent.shape[2])], dim=2)


def low_latent(frames: int = 3, seed: int = 1) -> torch.Tensor:
    # Scaled 1.5 latents are roughly unit-variance; a mean offset keeps the "which space" tests meaningful.
    return torch.randn(1, CHANNELS, frames, *LOW, generator=torch.Generator().manual_seed(seed)) + 0.3


def sr_pixels():
    return SR[0] * 16, SR[1] * 16


# ------------------------------------------------------------ loading
@pytest.mark.parametrize("kind", up.KINDS)
@pytest.mark.parametrize("layout", ["comfyui-file", "tencent-folder", "tencent-release-root"])
def test_loads_each_kind_in_each_layout(tmp_path, kind, layout):
    state = original_state(kind)
    if layout == "comfyui-file":
        path = write_comfyui(tmp_path, kind, state)
        state = {k: v.half().float() for k, v in state.items()}  # what the fp16 file holds
    else:
        folder = write_tencent(tmp_path, kind, state)
        path = folder if layout == "tencent-folder" else tmp_path
    loaded = up.load_upsampler(path)
    assert loaded.kind == kind
    assert loaded.latent_channels == CHANNELS
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert f"{kind} latent upsampler" in loaded.info
    x = resize_per_frame(low_latent(), SR)
    with torch.no_grad():
        got = loaded.model(x)
    assert got.shape == x.shape
    torch.testing.assert_close(got, reference_forward(kind, state, x), atol=1e-5, rtol=1e-5)


def test_release_root_with_both_kinds_picks_by_target(tmp_path):
    for kind in up.KINDS:
        write_tencent(tmp_path, kind)
    assert up.load_upsampler(tmp_path, target="1080p").kind == "1080p"
    assert up.load_upsampler(tmp_path / "upsampler", target="720p").kind == "720p"
    with pytest.raises(ModelFileError, match="720p_sr_distilled and 1080p_sr_distilled"):
        up.load_upsampler(tmp_path)


def test_global_residual_from_tencent_config(tmp_path):
    """Tencent's 720p class adds its input back when config.json says so; ComfyUI's loader always leaves it off."""
    state = original_state("720p")
    folder = write_tencent(tmp_path, "720p", state, global_residual=True)
    x = resize_per_frame(low_latent(), SR)
    expected = reference_forward("720p", state, x, global_residual=True)
    for path in (folder, folder / up.WEIGHTS_FILE):  # the folder, or its weights file picked on its own
        with torch.no_grad():
            got = up.load_upsampler(path).model(x)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_wrapper_prefix_is_stripped(tmp_path):
    state = {f"module.{k}": v for k, v in original_state("1080p").items()}  # a trainer's wrapper
    path = tmp_path / "prefixed.safetensors"
    save_file(state, str(path))
    assert up.load_upsampler(path).kind == "1080p"


# ------------------------------------------------------------ refusals, each in a sentence naming the file
def refuse(path, *needles):
    with pytest.raises(ModelFileError) as info:
        up.load_upsampler(path)
    message = str(info.value)
    for needle in (Path(path).name, "latent upsampler", *needles):
        assert needle in message, message
    return message


@pytest.mark.parametrize("what,keys,says", [
    ("vae", {"encoder.down.0.block.0.conv1.conv.weight": (4, 3, 3, 3, 3), "decoder.conv_in.conv.weight": (4, 4)},
     "VAE"),
    ("transformer", {"byt5_in.fc1.weight": (4, 4), "double_blocks.0.img_attn_q.weight": (4, 4)}, "transformer"),
    ("ltx_upsampler", {"post_upsample_res_blocks.0.conv2.bias": (4,)}, "LTX-Video"),
    ("random", {"foo.weight": (2, 2)}, "not a model this pack knows"),
])
def test_refuses_other_models(tmp_path, what, keys, says):
    path = tmp_path / f"{what}.safetensors"
    save_file({k: torch.zeros(shape) for k, shape in keys.items()}, str(path))
    refuse(path, says, up.COMFYUI_FILES["720p"])


def test_refuses_files_that_are_not_safetensors(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("just some text")
    with pytest.raises(ModelFileError, match="notes.safetensors"):
        up.load_upsampler(path)
    with pytest.raises(ModelFileError, match="does not exist"):
        up.load_upsampler(tmp_path / "missing.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="has no diffusion_pytorch_model.safetensors"):
        up.load_upsampler(tmp_path / "empty")


def test_refuses_folder_whose_config_disagrees(tmp_path):
    folder = write_tencent(tmp_path / "a", "720p", hidden_channels=64)
    refuse(folder, "hidden_channels")
    folder = write_tencent(tmp_path / "b", "1080p", _class_name="SRTo720pUpsampler")
    refuse(folder, "SRTo720pUpsampler")


def test_refuses_truncated_weights(tmp_path):
    state = original_state("720p")
    del state["blocks.1.block.2.conv.weight"]
    path = tmp_path / "cut.safetensors"
    save_file(state, str(path))
    refuse(path, "missing")


def test_upsampler_in_another_slot_is_named(tmp_path):
    """Picked as a VAE, an upsampler is named as what it is (it used to be 'not a model this pack knows')."""
    path = write_comfyui(tmp_path, "1080p")
    with pytest.raises(ModelFileError, match="HunyuanVideo-1.5 latent upsampler \\(latent_upscale_models\\)"):
        loading.family_for_slot(path, "vae", "the VAE", "vae")


def test_check_target(tmp_path):
    small = up.load_upsampler(write_comfyui(tmp_path, "720p"))
    up.check_target(small, "720p")
    with pytest.raises(UserInputError) as info:
        up.check_target(small, "1080p")
    message = str(info.value)
    assert "720p latent upsampler (480p -> 720p)" in message and up.COMFYUI_FILES["1080p"] in message, message
    with pytest.raises(UserInputError, match="Unknown super-resolution target '4k'"):
        up.check_target(small, "4k")


# ------------------------------------------------------------ upsample_latent
@pytest.mark.parametrize("kind", up.KINDS)
def test_upsample_latent_resizes_per_frame_then_refines(tmp_path, kind):
    state = original_state(kind)
    loaded = up.load_upsampler(write_tencent(tmp_path, kind, state))
    latent = low_latent()
    height, width = sr_pixels()
    got = up.upsample_latent(latent, loaded, height, width)
    assert got.shape == (1, CHANNELS, 3, *SR) and got.dtype == torch.float32
    expected = reference_forward(kind, state, resize_per_frame(latent, SR))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # A LATENT's unscaled samples with the VAE's factor: refined in the scaled space, handed back unscaled.
    scale = 1.03682
    unscaled = up.upsample_latent(latent / scale, loaded, height, width, scaling_factor=scale)
    torch.testing.assert_close(unscaled, expected / scale, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(unscaled, up.upsample_latent(latent / scale, loaded, height, width), atol=1e-3)
    # A bf16 latent is resized and refined in float32 all the same.
    torch.testing.assert_close(up.upsample_latent(latent.bfloat16(), loaded, height, width),
                               reference_forward(kind, state, resize_per_frame(latent.bfloat16().float(), SR)),
                               atol=1e-5, rtol=1e-5)


def test_upsample_latent_refusals(tmp_path):
    loaded = up.load_upsampler(write_comfyui(tmp_path, "720p"))
    height, width = sr_pixels()
    with pytest.raises(UserInputError, match="16 channels.*takes HunyuanVideo-1.5's 8"):
        up.upsample_latent(torch.zeros(1, 16, 3, *LOW), loaded, height, width)
    with pytest.raises(UserInputError, match="video latent"):
        up.upsample_latent(torch.zeros(CHANNELS, *LOW), loaded, height, width)
    with pytest.raises(UserInputError, match="smaller than the input video"):
        up.upsample_latent(low_latent(), loaded, LOW[0] * 16 - 16, width)
    with pytest.raises(UserInputError, match="multiples of 16"):
        up.upsample_latent(low_latent(), loaded, height + 8, width)


# ------------------------------------------------------------ opt-in: the same weights in the other projects' classes
def run_reference(which: str, tree: str, kind: str, weights: Path, tmp_path: Path):
    latent = low_latent()
    inputs = tmp_path / "inputs.safetensors"
    save_file({"latent": latent, "resized": resize_per_frame(latent, SR)}, str(inputs))
    output = tmp_path / "outputs.safetensors"
    done = subprocess.run(
        [sys.executable, str(HERE / "upsampler_references.py"), which, tree, kind, str(weights), str(inputs),
         str(output), str(SR[0]), str(SR[1])], capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = load_file(str(output))
    loaded = up.load_upsampler(weights)
    with torch.no_grad():
        module = loaded.model(resize_per_frame(latent, SR))
    chain = up.upsample_latent(latent, loaded, *sr_pixels())
    diffs = {name: (ours - theirs[name]).abs().max().item() for name, ours in (("module", module), ("chain", chain))}
    print(f"{which} {kind}: max abs diff module {diffs['module']:.3g}, resize + module {diffs['chain']:.3g}")
    return diffs


@pytest.mark.skipif(not os.environ.get("COMFYUI08_PATH"),
                    reason="opt-in: set COMFYUI08_PATH to a ComfyUI >= 0.3.70 tree (comfy/ldm/hunyuan_video/upsampler.py)")
@pytest.mark.parametrize("kind", up.KINDS)
def test_matches_comfyui_classes(tmp_path, kind):
    tree = os.environ["COMFYUI08_PATH"]
    if not (Path(tree) / "comfy" / "ldm" / "hunyuan_video" / "upsampler.py").is_file():
        pytest.skip(f"{tree} has no comfy/ldm/hunyuan_video/upsampler.py (ComfyUI older than 0.3.70)")
    weights = write_comfyui(tmp_path, kind, dtype=torch.float32)
    diffs = run_reference("comfyui", tree, kind, weights, tmp_path)
    assert max(diffs.values()) <= 1e-5, diffs


@pytest.mark.skipif(not os.environ.get("TENCENT_HV15_PATH"),
                    reason="opt-in: set TENCENT_HV15_PATH to Tencent's HunyuanVideo-1.5 source tree")
@pytest.mark.parametrize("kind", up.KINDS)
def test_matches_tencent_classes(tmp_path, kind):
    tree = os.environ["TENCENT_HV15_PATH"]
    if not (Path(tree) / "hyvideo" / "models" / "transformers" / "modules" / "upsample.py").is_file():
        pytest.skip(f"{tree} has no hyvideo/models/transformers/modules/upsample.py")
    folder = write_tencent(tmp_path, kind)  # read by Tencent's own from_pretrained: the layout is its
    diffs = run_reference("tencent", tree, kind, folder, tmp_path)
    assert max(diffs.values()) <= 1e-5, diffs
