"""VAE tiling is chosen per call: the start image's encode never depends on what a decode set before it."""

import pytest
import torch

from hyv_pack.hunyuan_i2v import loading, stages

HEIGHT, WIDTH, TILE = 96, 160, 64  # a frame larger than the tile, so a tiled call would differ from a whole one


@pytest.fixture(scope="module", params=["13b", "1.5"])
def vae(request, models_root, models15_root):
    folder = {"13b": models_root / "diffusers" / "tiny_v2", "1.5": models15_root / "diffusers" / "tiny15"}
    return loading.load_vae(folder[request.param], "fp32")


def start_pixels():
    g = torch.Generator().manual_seed(3)
    return torch.rand(1, 3, HEIGHT, WIDTH, generator=g) * 2 - 1


def latent_for(vae):
    g = torch.Generator().manual_seed(4)
    r = vae.spatial_ratio
    samples = torch.randn(1, vae.latent_channels, 2, HEIGHT // r, WIDTH // r, generator=g)
    return {"samples": samples, stages.LATENT_INFO_KEY: {"family": vae.family}}


def test_encode_is_the_same_before_and_after_a_tiled_decode(vae):
    first = vae.encode_image(start_pixels())
    stages.run_decode(vae, latent_for(vae), tiling=True, tile_size=TILE)
    assert torch.equal(vae.encode_image(start_pixels()), first)
    stages.run_decode(vae, latent_for(vae), tiling=False)
    assert torch.equal(vae.encode_image(start_pixels()), first)


def test_each_decode_uses_its_own_tiling(vae):
    whole = stages.run_decode(vae, latent_for(vae), tiling=False)
    tiled = stages.run_decode(vae, latent_for(vae), tiling=True, tile_size=TILE)
    assert not torch.equal(whole, tiled)  # the tile setting was applied: this frame spans several tiles
    assert torch.equal(stages.run_decode(vae, latent_for(vae), tiling=False), whole)
    assert torch.equal(stages.run_decode(vae, latent_for(vae), tiling=True, tile_size=TILE), tiled)
    assert not vae.model.use_tiling  # nothing is left on the shared VAE between calls
