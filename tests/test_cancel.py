"""Cancel lands inside every stage (between blocks), and encode and decode report progress.

``poll`` is the host's cancel check (ComfyUI's raises its interrupt exception); here it raises after a given number
of calls, and forward hooks count the blocks that ran after it raised: none may.
"""

import pytest
import torch
from conftest import test_image

from hyv_pack.hunyuan_i2v import loading, stages
from hyv_pack.hunyuan_i2v.shared import interrupt
from hyv_pack.hunyuan_i2v.shared.sampling import SamplingSettings


class Cancelled(Exception):
    pass


class CancelAfter:
    """A poll that raises on its ``n``-th call, and notes every block that runs after that."""

    def __init__(self, n: int):
        self.n, self.calls, self.raised, self.ran_after = n, 0, False, 0

    def __call__(self):
        self.calls += 1
        if self.calls >= self.n:
            self.raised = True
            raise Cancelled()

    def watch(self, modules):
        blocks = interrupt.repeated_blocks(modules)
        return [b.register_forward_hook(lambda *a: setattr(self, "ran_after", self.ran_after + self.raised))
                for b in blocks]


@pytest.fixture(scope="module", params=["13b", "1.5"])
def parts(request, models_root, models15_root):
    folder = {"13b": models_root / "diffusers" / "tiny_v2", "1.5": models15_root / "diffusers" / "tiny15"}[request.param]
    encoders = loading.load_text_encoders(loading.TextEncoderSources(folder=folder), "fp32", device="cpu")
    vae = loading.load_vae(folder, "fp32")
    model = loading.load_model(folder, "fp32")
    cond = stages.run_encode(encoders, vae, test_image(48, 64)[0], "a cat", "", width=64, height=48)
    return encoders, vae, model, cond


def no_hooks_left(modules):
    return all(not b._forward_pre_hooks for b in interrupt.repeated_blocks(modules))


def test_encode_stops_between_blocks_and_reports_progress(parts):
    encoders, vae, _, cond = parts
    modules = encoders.modules() + [vae.model]
    progress = []
    stages.run_encode(encoders, vae, test_image(48, 64)[0], "a cat", "", width=64, height=48,
                      poll=lambda: None, on_progress=lambda done, total: progress.append((done, total)))
    done = [d for d, _ in progress]
    assert done == sorted(done) and progress[-1][0] == progress[-1][1] and len(progress) > 3
    poll = CancelAfter(3)
    hooks = poll.watch(modules)
    with pytest.raises(Cancelled):
        stages.run_encode(encoders, vae, test_image(48, 64)[0], "a cat", "", width=64, height=48, poll=poll)
    for hook in hooks:
        hook.remove()
    assert poll.raised and poll.ran_after == 0 and no_hooks_left(modules)
    again = stages.run_encode(encoders, vae, test_image(48, 64)[0], "a cat", "", width=64, height=48)
    assert torch.equal(again.image_latent, cond.image_latent)


def test_sample_stops_inside_a_step(parts):
    _, _, model, cond = parts
    settings = SamplingSettings(seed=1, steps=3, num_frames=5, cfg_scale=1.0)
    steps = []
    poll = CancelAfter(2)  # before the second block of the first step
    hooks = poll.watch([model.model])
    with pytest.raises(Cancelled):
        stages.run_sample(model, cond, settings, on_step=lambda info: steps.append(info.index), poll=poll)
    for hook in hooks:
        hook.remove()
    assert steps == [] and poll.ran_after == 0 and no_hooks_left([model.model])
    plain = stages.run_sample(model, cond, settings).latent["samples"]
    assert torch.equal(stages.run_sample(model, cond, settings, poll=lambda: None).latent["samples"], plain)


@pytest.mark.parametrize("tiling", [False, True])
def test_decode_stops_inside_a_tile_and_reports_progress(parts, tiling):
    _, vae, _, _ = parts
    r = vae.spatial_ratio
    latent = {"samples": torch.randn(1, vae.latent_channels, 3, 160 // r, 192 // r,
                                     generator=torch.Generator().manual_seed(0))}
    progress, decoder_runs = [], []
    hook = vae.model.decoder.register_forward_hook(lambda *a: decoder_runs.append(1))
    whole = stages.run_decode(vae, latent, tiling, 64, poll=lambda: None,
                              on_progress=lambda done, total: progress.append((done, total)))
    hook.remove()
    total = progress[-1][1]
    assert progress[-1] == (total, total) and [d for d, _ in progress] == sorted(d for d, _ in progress)
    per_call = len(interrupt.repeated_blocks([vae.model.decoder]))
    assert total == per_call * len(decoder_runs)  # the total follows diffusers' own tiling: one entry per tile
    assert (len(decoder_runs) > 1) == tiling
    poll = CancelAfter(per_call + 1 if tiling else per_call)  # inside the second tile, or the one whole decode
    hooks = poll.watch([vae.model])
    with pytest.raises(Cancelled):
        stages.run_decode(vae, latent, tiling, 64, poll=poll)
    for h in hooks:
        h.remove()
    assert poll.ran_after == 0 and no_hooks_left([vae.model])
    assert torch.equal(stages.run_decode(vae, latent, tiling, 64), whole)
