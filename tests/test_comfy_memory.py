"""The GPU shared with ComfyUI: each stage asks for its whole estimate, an OOM stays an OOM, "Unload models"
reaches the pack's models. ComfyUI's model management is a fake that records what it is asked."""

import pytest
import torch
from conftest import encode_inputs, run_node, sample_inputs, te_choice, test_image, transformer_inputs

from hyv_pack.hunyuan_i2v import families, planner, stages
from hyv_pack.hunyuan_i2v.shared import acceleration
from hyv_pack.nodes import comfy_bridge

GIB = 2**30
CUDA = torch.device("cuda")


class FakeModelManagement:
    """The parts of comfy.model_management the pack calls, recording each request."""

    def __init__(self, free: int, reserve: int = GIB):
        self.free, self.reserve = free, reserve
        self.free_requests, self.unloads, self.other_models = [], 0, 3 * GIB

    def minimum_inference_memory(self):
        return self.reserve

    def free_memory(self, memory_required, device, keep_loaded=()):
        self.free_requests.append((memory_required, device))
        while self.other_models and self.free < memory_required:  # ComfyUI unloads its own models
            self.free += self.other_models
            self.other_models = 0

    def unload_all_models(self):
        self.unloads += 1
        self.free_memory(1e30, CUDA)

    def get_free_memory(self, device=None, torch_free_too=False):
        return self.free

    def soft_empty_cache(self, force=False):
        pass


@pytest.fixture()
def fake_comfy(monkeypatch):
    fake = FakeModelManagement(free=2 * GIB)
    monkeypatch.setattr(comfy_bridge, "HAVE_COMFY", True)
    monkeypatch.setattr(comfy_bridge, "_mm", fake)
    return fake


@pytest.fixture()
def graph(comfy_models):
    model, _ = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("[diffusers] tiny_v2"))
    (vae,) = run_node("HunyuanI2VLoadVAE", vae_name="[diffusers] tiny_v2", dtype="fp32")
    (encoders,) = run_node("HunyuanI2VLoadTextEncoders", **te_choice("tiny_v2"))
    cond, _ = run_node("HunyuanI2VEncode", **encode_inputs(encoders, vae, test_image(32, 48)[0], resolution="360p",
                                                           width=48, height=32))
    return model, vae, encoders, cond


def test_make_room_asks_for_the_estimate_plus_comfyuis_reserve(fake_comfy):
    comfy_bridge.make_room_on_device(CUDA, 5 * GIB)
    assert fake_comfy.free_requests == [(6 * GIB, CUDA)]


def test_each_node_asks_for_its_stage_estimate_not_only_the_weights(graph, monkeypatch):
    model, vae, encoders, cond = graph
    asked = []
    monkeypatch.setattr(comfy_bridge, "make_room_on_device", lambda device, size, keep=(): asked.append(size))
    run_node("HunyuanI2VEncode", **encode_inputs(encoders, vae, test_image(32, 48)[0], width=48, height=32))
    (latent,) = run_node("HunyuanI2VSample", **sample_inputs(model, cond, steps=2, frames=5))
    run_node("HunyuanI2VDecode", vae=vae, latent=latent, tiling=True, tile_size=256, fps=24.0)
    encode, sample, decode = asked
    assert encode == planner.encode_estimate(encoders, vae).total > stages.gpu_bytes_for_encode(encoders, vae)
    assert sample == planner.sample_estimate(model, cond, 5).total > stages.gpu_bytes_for_sample(model)
    assert decode == planner.decode_estimate(vae, tuple(latent["samples"].shape), True, 256).total
    assert decode > stages.gpu_bytes_for_decode(vae)


def test_block_offload_still_asks_for_the_working_memory(graph):
    model, _, _, cond = graph
    model.offload_mode = "block"
    settings = stages.SamplingSettings(steps=2, num_frames=5)
    assert stages.sample_memory_request(model, cond, settings) == planner.sample_estimate(model, cond, 5, "block").total
    assert planner.sample_estimate(model, cond, 5, "block").activations > 0


def test_auto_asks_for_the_fastest_mode_then_plans_against_what_is_free(graph):
    model, _, _, cond = graph
    model.offload_mode = "auto"
    request = stages.sample_memory_request(model, cond, stages.SamplingSettings(steps=2, num_frames=5))
    assert request == planner.sample_estimate(model, cond, 5, "model").total


def test_out_of_memory_reaches_comfyui_as_torchs_error_with_advice(graph, monkeypatch):
    model, _, _, cond = graph
    fam = families.family(model.family)

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(fam, "sample", oom)
    with pytest.raises(torch.OutOfMemoryError, match="offload mode to 'block'.*Tried to allocate"):
        stages.run_sample(model, cond, stages.SamplingSettings(steps=2, num_frames=5))


def test_unload_models_releases_a_resident_transformer(graph, monkeypatch):
    """offload mode "none" keeps the transformer on the GPU; ComfyUI's "Unload models" (POST /free) gives it back."""
    model, _, _, cond = graph
    fake = FakeModelManagement(free=2 * GIB)
    monkeypatch.setattr(comfy_bridge, "HAVE_COMFY", True)
    monkeypatch.setattr(comfy_bridge, "_mm", fake)
    assert comfy_bridge.install_memory_hooks()
    # This CPU stands in for the GPU: "resident" = left on the stage's device, "released" = sent to the offload
    # device (the meta device here, so the move is visible).
    with acceleration.on_device([model.model], torch.device("cpu"), torch.device("meta"), keep=True):
        pass
    assert acceleration.resident_bytes() > 0
    fake.unload_all_models()  # what POST /free with unload_models runs, through the hook
    assert fake.unloads == 1 and acceleration.resident_bytes() == 0
    assert all(p.device.type == "meta" for p in model.model.parameters())


def test_comfyui_needing_room_releases_the_pack_models_only_when_its_own_did_not_suffice(graph, monkeypatch):
    model, _, _, _ = graph
    fake = FakeModelManagement(free=2 * GIB)
    monkeypatch.setattr(comfy_bridge, "HAVE_COMFY", True)
    monkeypatch.setattr(comfy_bridge, "_mm", fake)
    comfy_bridge.install_memory_hooks()
    with acceleration.on_device([model.model], torch.device("cpu"), torch.device("meta"), keep=True):
        pass
    fake.free_memory(4 * GIB, CUDA)  # ComfyUI's own model (3 GB) was enough
    assert acceleration.resident_bytes() > 0
    fake.free_memory(40 * GIB, CUDA)  # not enough: the pack's resident transformer goes too
    assert acceleration.resident_bytes() == 0


def test_the_stage_own_request_keeps_the_model_it_is_about_to_use(graph, monkeypatch):
    model, _, _, _ = graph
    fake = FakeModelManagement(free=1 * GIB)
    fake.other_models = 0
    monkeypatch.setattr(comfy_bridge, "HAVE_COMFY", True)
    monkeypatch.setattr(comfy_bridge, "_mm", fake)
    comfy_bridge.install_memory_hooks()
    with acceleration.on_device([model.model], torch.device("cpu"), torch.device("meta"), keep=True):
        pass
    comfy_bridge.make_room_on_device(CUDA, 10 * GIB, keep=[model.model])
    assert acceleration.resident_bytes() > 0
    comfy_bridge.make_room_on_device(CUDA, 10 * GIB)  # decode: the transformer is not needed, it goes
    assert acceleration.resident_bytes() == 0
