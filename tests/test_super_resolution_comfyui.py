"""Opt-in: the super-resolution conditioning (the 66 channels beside the noisy latent) against ComfyUI's own
``HunyuanVideo15SuperResolution`` node and ``HunyuanVideo15_SR_Distilled`` conditioning pass, on the same latents and
the same noise. Skipped unless COMFYUI08_PATH names a ComfyUI >= 0.3.70 tree; ComfyUI runs in a process of its own
(tests/comfyui_sr_conditioning.py) under COMFYUI08_PYTHON, or this interpreter.

The pack follows Tencent (``HunyuanVideo_1_5_SR_Pipeline``); every place ComfyUI 0.8.0 differs is asserted as what it
is, so a change on either side fails here:
- scale: ComfyUI's LATENT and VAE output are unscaled and its SR concat skips ``process_latent_in``; the pack (as
  Tencent) works in the scaled space (x 1.03682): the latent channels differ by exactly that factor;
- the frame-0 mask: ComfyUI's node writes it into channel C + 1 (the first low-resolution channel), leaving the mask
  channel C at 0; the pack puts it in channel C;
- noise augmentation: both ``a * noise + share * latent``, share ``1 - a`` in the pack and ``min(1 - a, 0.75)`` in
  ComfyUI (equal for a >= 0.25); at a = 0 ComfyUI adds no noise and keeps 0.75 x the latent; ComfyUI's noise is
  ``randn`` of a CPU generator seeded ``seed - 10``, the pack's its own (same seed, other draw);
- late steps: the pack zeroes the low-resolution and ones channels and keeps the image latent and mask (Tencent);
  ComfyUI's template (video_hunyuan_video_1.5_720p_i2v.json: SplitSigmas at 4 of 8) samples its second half from the
  plain text conditioning, so all 66 channels are 0 there and the SigLIP tokens are gone.
"""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

from hyv_pack.hunyuan_i2v.hunyuan_video_15 import super_resolution
from hyv_pack.hunyuan_i2v.hunyuan_video_15.sampling import first_frame_condition
from hyv_pack.hunyuan_i2v.hunyuan_video_15.vae import REAL_VAE_DEFAULTS

HERE = Path(__file__).resolve().parent
C, FRAMES, SR_LATENT = 32, 3, (6, 8)  # the real channel count; 3 latent frames (9 video frames) at 96x128 pixels
SEED = 42
AUGMENTATIONS = (0.7, 0.5, 0.1, 0.0)  # default; still equal; below 0.25 the formulas part; none
SCALE = REAL_VAE_DEFAULTS["scaling_factor"]
IMAGE, MASK, LOW_RES, ONES = slice(0, C), C, slice(C + 1, 2 * C + 1), 2 * C + 1

pytestmark = pytest.mark.skipif(
    not os.environ.get("COMFYUI08_PATH"),
    reason="opt-in: set COMFYUI08_PATH to a ComfyUI >= 0.3.70 tree (comfy_extras/nodes_hunyuan.py with "
           "HunyuanVideo15SuperResolution), and COMFYUI08_PYTHON to its interpreter if not this one",
)


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    """ComfyUI's tensors for the inputs below, and the inputs (unscaled, as ComfyUI's LATENT and VAE carry them)."""
    tree = Path(os.environ["COMFYUI08_PATH"])
    node_file = tree / "comfy_extras" / "nodes_hunyuan.py"
    if not node_file.is_file() or "HunyuanVideo15SuperResolution" not in node_file.read_text("utf-8"):
        pytest.skip(f"{tree} has no HunyuanVideo15SuperResolution node (ComfyUI older than 0.3.70)")
    generator = torch.Generator().manual_seed(0)
    inputs = {
        "latent": 1.5 * torch.randn(1, C, FRAMES, *SR_LATENT, generator=generator),  # the upsampled base latent
        "image_latent": 1.5 * torch.randn(1, C, 1, *SR_LATENT, generator=generator),  # the VAE's start image latent
        "start_image": torch.rand(1, 100, 120, 3, generator=generator),
        "seed": torch.tensor(SEED),
        "augmentations": torch.tensor(AUGMENTATIONS, dtype=torch.float64),
    }
    folder = tmp_path_factory.mktemp("comfyui_sr")
    save_file(inputs, str(folder / "inputs.safetensors"))
    python = os.environ.get("COMFYUI08_PYTHON") or sys.executable
    done = subprocess.run(
        [python, str(HERE / "comfyui_sr_conditioning.py"), str(tree), str(folder / "inputs.safetensors"),
         str(folder / "outputs.safetensors")], capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return inputs, load_file(str(folder / "outputs.safetensors"))


def pack_channels(inputs, augmentation, noise=None):
    """The pack's (early, late) condition channels for the same latents, in its scaled space; ``noise`` replaces the
    pack's own augmentation draw when given."""
    low_res, image_latent = inputs["latent"] * SCALE, inputs["image_latent"] * SCALE
    cond = super_resolution.SRConditioning(
        None, None, torch.zeros(1, 729, 8), image_latent, SR_LATENT[1] * 16, SR_LATENT[0] * 16, None, SCALE, 16, 4,
        low_res=low_res, noise_augmentation=augmentation,
    )
    first_frame = first_frame_condition(SimpleNamespace(latent_channels=C), cond, tuple(low_res.shape), "cpu")
    if noise is None:
        return super_resolution.condition_channels(cond, first_frame, SEED, "cpu")
    kept = super_resolution.augmentation_noise
    super_resolution.augmentation_noise = lambda shape, seed: noise
    try:
        return super_resolution.condition_channels(cond, first_frame, SEED, "cpu")
    finally:
        super_resolution.augmentation_noise = kept


def comfyui_noise():
    """ComfyUI's augmentation noise (model_base.HunyuanVideo15_SR_Distilled.concat_cond): a CPU generator seeded
    with the sampler's seed - 10, one draw the shape of the low-resolution channels."""
    return torch.randn((1, C, FRAMES, *SR_LATENT), generator=torch.Generator().manual_seed(SEED - 10))


def test_same_vae_scale(comfy):
    _, theirs = comfy
    assert theirs["scale_factor"].item() == pytest.approx(SCALE, abs=1e-12)


def test_before_augmentation(comfy):
    """The node's conditioning before the sampler mixes noise in equals the pack's channels at a = 0 (the latent
    unchanged), ComfyUI's latents x the VAE scale, except the two frame-0 mask cells."""
    inputs, theirs = comfy
    node = theirs["node_concat"]
    ours, _ = pack_channels(inputs, 0.0)
    assert node.shape == ours.shape == (1, 2 * C + 2, FRAMES, *SR_LATENT)
    assert tuple(theirs["vae_pixels_shape"].tolist()) == (1, SR_LATENT[0] * 16, SR_LATENT[1] * 16, 3)
    mapped = node.clone()
    mapped[:, IMAGE] *= SCALE
    mapped[:, LOW_RES] *= SCALE
    # Documented difference: ComfyUI's node sets its frame-0 mask in channel C + 1, not in the mask channel C.
    assert not node[:, MASK].any() and torch.equal(node[:, C + 1, 0], torch.ones(1, *SR_LATENT))
    assert torch.equal(ours[:, MASK, 0], torch.ones(1, *SR_LATENT)) and not ours[:, MASK, 1:].any()
    assert torch.equal(ours[:, C + 1, 0], inputs["latent"][:, 0, 0] * SCALE)
    same = torch.ones_like(ours, dtype=torch.bool)
    same[:, MASK, 0] = same[:, C + 1, 0] = False
    diff = (mapped - ours)[same].abs().max().item()
    print(f"before augmentation: max abs diff (ComfyUI x {SCALE} vs pack) {diff:.3g}")
    assert diff == 0.0
    assert torch.equal(ours[:, IMAGE, 0], inputs["image_latent"][:, :, 0] * SCALE) and not ours[:, IMAGE, 1:].any()
    assert torch.equal(ours[:, ONES], torch.ones(1, FRAMES, *SR_LATENT))


@pytest.mark.parametrize("index", range(len(AUGMENTATIONS)), ids=[f"a={a}" for a in AUGMENTATIONS])
def test_after_augmentation_same_noise(comfy, index):
    """With ComfyUI's noise draw injected into the pack: the noise enters both as ``a * noise`` unscaled, and the
    latent share left after taking it out is ComfyUI's x the VAE scale x (1 - a) / min(1 - a, 0.75)."""
    inputs, theirs = comfy
    a = AUGMENTATIONS[index]
    node, early = theirs["node_concat"], theirs[f"early_{index}"]
    noise = comfyui_noise()
    ours, _ = pack_channels(inputs, a, noise)
    # Outside the low-resolution channels ComfyUI's sampler pass changes nothing the node built.
    others = torch.ones(2 * C + 2, dtype=torch.bool)
    others[LOW_RES] = False
    assert torch.equal(early[:, others], node[:, others])
    if a == 0:  # ComfyUI: no noise, 0.75 x the latent; the pack: the latent itself (Tencent's 1 - 0)
        assert torch.equal(early[:, LOW_RES], 0.75 * node[:, LOW_RES])
        assert torch.equal(ours[:, LOW_RES], inputs["latent"] * SCALE)
        return
    share = min(1 - a, 0.75)
    assert (share == 1 - a) == (a >= 0.25)
    their_latent = early[:, LOW_RES] - a * noise  # ComfyUI's own noise taken out: its latent share is left
    our_latent = ours[:, LOW_RES] - a * noise
    torch.testing.assert_close(their_latent, share * node[:, LOW_RES], atol=1e-6, rtol=0)
    expected = SCALE * their_latent * (1 - a) / share
    expected[:, 0, 0] = SCALE * (1 - a) * inputs["latent"][:, 0, 0]  # ComfyUI's frame-0 mask cell (see above)
    diff = (our_latent - expected).abs().max().item()
    print(f"a={a}: max abs diff of the low-resolution channels (pack vs ComfyUI mapped) {diff:.3g}")
    assert diff <= 2e-6
    # Same seed, other noise: the pack draws its own (the sampler's generator, second draw), as Tencent its own.
    assert not torch.allclose(super_resolution.augmentation_noise(tuple(noise.shape), SEED), noise)


def test_late_steps(comfy):
    """Below t = 1000 a the pack zeroes the low-resolution and ones channels and keeps the image latent and mask
    (Tencent); ComfyUI's second sampler reads the plain text conditioning: 66 zero channels and no SigLIP tokens."""
    inputs, theirs = comfy
    early, late = pack_channels(inputs, 0.7, comfyui_noise())
    their_late = theirs["late"]
    assert their_late.shape == late.shape
    assert torch.equal(their_late[:, LOW_RES], late[:, LOW_RES]) and not late[:, LOW_RES].any()
    assert torch.equal(their_late[:, ONES], late[:, ONES]) and not late[:, ONES].any()
    # Documented difference: the image latent and its mask stay on in the pack, ComfyUI drops them.
    assert not their_late[:, :C + 1].any()
    assert torch.equal(late[:, :C + 1], early[:, :C + 1]) and late[:, IMAGE, 0].abs().sum() > 0
    assert bool(theirs["has_clip_fea"]) and not bool(theirs["late_has_clip_fea"])
    # MeanFlow's second timestep stays on in ComfyUI's SR model, as in the pack and Tencent.
    assert not bool(theirs["disable_time_r"])
