"""The node contract: what ComfyUI validates, importing as ComfyUI does, progress and interrupt."""

import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import ROOT, encode_inputs, run_node, sample_inputs, te_choice, test_image, transformer_inputs

import hyv_pack
from hyv_pack import NODE_CLASS_MAPPINGS as NODES
from hyv_pack.nodes import comfy_bridge


@pytest.mark.parametrize("name", sorted(NODES))
def test_node_declarations_are_valid(name, comfy_models):
    cls = NODES[name]
    assert callable(getattr(cls(), cls.FUNCTION))
    assert cls.CATEGORY.startswith("HunyuanVideo I2V")
    assert len(cls.RETURN_TYPES) == len(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES))
    assert name in hyv_pack.NODE_DISPLAY_NAME_MAPPINGS
    for section in cls.INPUT_TYPES().values():
        for input_name, spec in section.items():
            kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
            if isinstance(kind, list):  # a combo: its default must be one of its options
                # A file list may be empty (no latent upsampler downloaded yet); a fixed choice never is.
                assert kind or input_name.endswith("_name"), input_name
                if "default" in options:
                    assert options["default"] in kind, (name, input_name)
            elif kind in ("INT", "FLOAT"):
                assert options["min"] <= options["default"] <= options["max"], (name, input_name)


def test_model_lists_show_files_and_diffusers_folders(comfy_models):
    choices = NODES["HunyuanI2VLoadTransformer"].INPUT_TYPES()["required"]["model_name"][0]
    assert "tiny_v1.safetensors" in choices and "[diffusers] tiny_v2" in choices
    spec = NODES["HunyuanI2VLoadTextEncoders"].INPUT_TYPES()["required"]
    assert {"[diffusers] tiny_v2", "tiny_llava_llama3.safetensors", "tiny_clip_l.safetensors"} <= set(spec["text_encoder"][0])
    assert "tiny_llava_llama3_vision.safetensors" in spec["vision"][0]
    assert "tiny_clip_l.safetensors" in spec["text_encoder_2"][0]


def test_pack_imports_as_comfyui_does_under_another_folder_name(tmp_path):
    """ComfyUI imports custom_nodes/<folder> by path under the folder's name."""
    folder = tmp_path / "custom_nodes" / "My HunyuanVideo-Pack"
    folder.parent.mkdir()
    folder.symlink_to(ROOT, target_is_directory=True)
    script = textwrap.dedent(f"""
        import importlib.util, sys
        path = {str(folder)!r}
        name = "My HunyuanVideo-Pack"
        spec = importlib.util.spec_from_file_location(name, path + "/__init__.py", submodule_search_locations=[path])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        assert "hunyuan_i2v" not in sys.modules, "an absolute import of the engine leaked"
        assert "nodes" not in sys.modules, "an absolute import of nodes leaked (ComfyUI has its own 'nodes')"
        print(sorted(module.NODE_CLASS_MAPPINGS))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HunyuanI2VSample" in result.stdout and "HunyuanI2VLoadTransformer" in result.stdout


class RecordingBar:
    def __init__(self, total):
        self.updates = []

    def update_absolute(self, value, total=None, preview=None):
        self.updates.append((value, total))


@pytest.fixture()
def tiny_graph(comfy_models):
    model, _ = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("[diffusers] tiny_v2"))
    (vae,) = run_node("HunyuanI2VLoadVAE", vae_name="[diffusers] tiny_v2", dtype="fp32")
    (encoders,) = run_node("HunyuanI2VLoadTextEncoders", **te_choice("tiny_v2"))
    image, _ = test_image(32, 48)
    cond, start = run_node("HunyuanI2VEncode", **encode_inputs(encoders, vae, image, prompt="a cat", resolution="360p",
                                                               width=48, height=32))
    return model, vae, cond, start


def settings(model, cond, **overrides):
    """Sample inputs with the values these tests always used: shift 7, guidance 6, cfg 1."""
    return sample_inputs(model, cond, flow_shift=7.0, embedded_guidance=6.0, cfg_scale=1.0, **overrides)


def test_progress_reported_every_step(tiny_graph, monkeypatch):
    model, vae, cond, start = tiny_graph
    bars = []
    monkeypatch.setattr(comfy_bridge, "progress_bar", lambda total: bars.append(RecordingBar(total)) or bars[-1])
    (latent,) = run_node("HunyuanI2VSample", **settings(model, cond, seed=7, steps=5, frames=9))
    assert bars[0].updates == [(i, 5) for i in range(1, 6)]
    assert latent["samples"].shape == (1, 4, 3, 4, 6)
    assert start.shape == (1, 32, 48, 3)


def test_interrupt_stops_inside_a_step(tiny_graph, monkeypatch):
    """Cancel is checked before every transformer block, so it lands inside the step that is running."""
    model, vae, cond, _ = tiny_graph
    calls = []

    class Interrupted(Exception):
        pass

    def check():
        calls.append(1)
        if len(calls) > 2:  # the check before sampling, the first block, then Cancel before the second block
            raise Interrupted()

    monkeypatch.setattr(comfy_bridge, "check_interrupt", check)
    steps_run, blocks_run = [], []
    hooks = [model.model.register_forward_hook(lambda *a: steps_run.append(1))]
    hooks += [block.register_forward_hook(lambda *a: blocks_run.append(len(calls)))
              for block in list(model.model.transformer_blocks) + list(model.model.single_transformer_blocks)]
    try:
        with pytest.raises(Interrupted):
            run_node("HunyuanI2VSample", **settings(model, cond, seed=7, steps=20, frames=9))
    finally:
        for hook in hooks:
            hook.remove()
    assert steps_run == []  # the first step never finished: the cancel landed between its blocks
    assert blocks_run == [2]  # the first block ran; no block ran after the check that raised
    # The model went back to the offload device despite the interruption.
    assert next(model.model.parameters()).device.type == "cpu"


def test_same_seed_same_video_and_decode_outputs(tiny_graph):
    model, vae, cond, _ = tiny_graph
    (a,) = run_node("HunyuanI2VSample", **settings(model, cond, seed=11, steps=2, frames=5))
    (b,) = run_node("HunyuanI2VSample", **settings(model, cond, seed=11, steps=2, frames=5))
    (c,) = run_node("HunyuanI2VSample", **settings(model, cond, seed=12, steps=2, frames=5))
    assert torch.equal(a["samples"], b["samples"]) and not torch.equal(a["samples"], c["samples"])
    frames, video = run_node("HunyuanI2VDecode", vae=vae, latent=a, tiling=True, tile_size=256, fps=24.0)
    assert frames.shape == (5, 32, 48, 3) and 0 <= frames.min() and frames.max() <= 1
    assert video is None  # core's VIDEO type exists only inside ComfyUI


def test_decode_rejects_image_latents(tiny_graph):
    from hyv_pack.hunyuan_i2v.errors import UserInputError

    _, vae, _, _ = tiny_graph
    with pytest.raises(UserInputError, match="video latent"):
        run_node("HunyuanI2VDecode", vae=vae, latent={"samples": torch.zeros(1, 4, 8, 8)}, tiling=True, tile_size=256,
                 fps=24.0)
