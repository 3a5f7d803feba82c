"""Speed and memory options: each one does what it says (timings live in benchmarks/)."""

import pytest
import torch
from conftest import test_image

from hyv_pack.hunyuan_i2v import loading, stages
from hyv_pack.hunyuan_i2v.errors import UserInputError
from hyv_pack.hunyuan_i2v.hunyuan_video_13b import text_encoders, vae
from hyv_pack.hunyuan_i2v.shared import acceleration, sampling


@pytest.fixture(scope="module")
def setup(models_root):
    folder = models_root / "diffusers" / "tiny_v2"
    encoders = text_encoders.load_diffusers_folder(folder, torch.float32)
    the_vae = vae.load_vae(folder, torch.float32)
    image, _ = test_image(32, 48)
    cond = stages.run_encode(encoders, the_vae, image, "a cat", "", width=48, height=32)
    return folder, cond


def run_latents(*args, **kwargs):
    """Sampled latents (the LATENT's samples) of stages.run_sample."""
    return stages.run_sample(*args, **kwargs).latent["samples"]


def count_block_calls(model, layer="proj_out"):
    """Calls of an inner layer of the last block: a skipped block or attention still passes
    through its cache hook, but not through its layers."""
    calls = []
    target = model.single_transformer_blocks[-1].get_submodule(layer)
    return calls, target.register_forward_hook(lambda *a: calls.append(1))


def test_first_block_cache_skips_blocks_and_is_removed_after(setup):
    folder, cond = setup
    model = loading.load_model(folder, "fp32")
    settings = sampling.SamplingSettings(seed=3, steps=12, num_frames=5)
    calls, handle = count_block_calls(model.model)
    baseline = run_latents(model, cond, settings)
    full = len(calls)
    calls.clear()
    cached = run_latents(model, cond, settings, cache="first block cache", cache_threshold=1.0)
    handle.remove()
    assert full == 12 and len(calls) < full  # later blocks were skipped on some steps
    assert not model.model.is_cache_enabled  # the shared model is left as it was
    assert torch.isfinite(cached).all() and not torch.equal(cached, baseline)


def test_taylorseer_cache_runs(setup):
    folder, cond = setup
    model = loading.load_model(folder, "fp32")
    settings = sampling.SamplingSettings(seed=3, steps=10, num_frames=5)
    calls, handle = count_block_calls(model.model, "attn.to_q")  # TaylorSeer predicts attention outputs
    latents = run_latents(model, cond, settings, cache="taylorseer")
    handle.remove()
    assert torch.isfinite(latents).all() and len(calls) < 10


def test_fp8_storage_keeps_weights_in_fp8(setup):
    folder, cond = setup
    model = loading.load_model(folder, "fp32", fp8_storage=True)
    assert model.model.transformer_blocks[0].ff.net[2].weight.dtype == torch.float8_e4m3fn
    reference = loading.load_model(folder, "fp32")
    # Norms and embeddings stay in the compute dtype (diffusers skips them); they are a large share of a tiny model.
    assert acceleration.module_bytes([model.model]) < 0.7 * acceleration.module_bytes([reference.model])
    settings = sampling.SamplingSettings(seed=3, steps=3, num_frames=5)
    a = run_latents(model, cond, settings)
    b = run_latents(reference, cond, settings)
    assert torch.isfinite(a).all()
    assert (a - b).abs().max() < 0.1 * b.abs().max()  # fp8 rounding, not a different result


def test_unknown_or_unavailable_options_are_explained(setup):
    folder, _ = setup
    with pytest.raises(UserInputError, match="Unknown attention backend"):
        loading.load_model(folder, "fp32", attention="fastest")
    with pytest.raises(UserInputError, match="Unknown offload mode"):
        loading.load_model(folder, "fp32", offload_mode="disk")
    with pytest.raises(UserInputError, match="Unknown weight dtype"):
        loading.load_model(folder, "fp64")
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        with pytest.raises(UserInputError, match="flash-attn 2.*not usable here"):
            loading.load_model(folder, "fp32", attention="flash-attn 2")


def test_offload_none_keeps_and_model_mode_returns():
    moved = []

    class Spy(torch.nn.Module):
        def to(self, *args, **kwargs):
            moved.append(args[0] if args else kwargs)
            return self

    spy = Spy()
    with acceleration.on_device([spy], torch.device("meta"), torch.device("cpu")):
        pass
    assert moved == [torch.device("meta"), torch.device("cpu")]
    moved.clear()
    with acceleration.on_device([spy], torch.device("meta"), torch.device("cpu"), keep=True):
        pass
    assert moved == [torch.device("meta")]
