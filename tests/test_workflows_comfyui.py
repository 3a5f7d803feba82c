"""Opt-in: every example workflow in a real ComfyUI server (set COMFYUI_PATH, and COMFYUI_PYTHON for its
interpreter; see docs/comfyui_integration.md).

* The core node specs pinned in tests/test_workflows.py are the server's (/object_info).
* Each API workflow as shipped passes ComfyUI's own prompt validation except for the files this server
  lacks (the model files and the start image): nothing else may be refused.
* Each API workflow runs with the model files swapped for the tiny ones of both families (and tiny
  width, height, frames and steps; every other setting as shipped), the remote ones against the WaveSpeed
  stand-in server, and Save Video leaves a video in the output folder.

The server helpers are tests/test_comfyui_integration.py's (a temporary base directory, the pack as a
symlink, torchvision/torchaudio stand-ins where needed, the WaveSpeed stand-in; all on 127.0.0.1).
"""

from __future__ import annotations

import copy
import json
import os

import pytest

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"),
                       reason="opt-in: set COMFYUI_PATH to a ComfyUI checkout (and COMFYUI_PYTHON to its interpreter)"),
]

from test_comfyui_integration import (  # noqa: E402 - fixtures and helpers shared with the integration test
    FULL_VOCAB_QWEN,
    _declared_inputs,
    _spec,
    assert_success,
    comfy_server,
    decode_mp4,
    error_report,
    full_vocab_root,  # noqa: F401 - a fixture
    saved_videos,
    start_image_png,
)
from test_workflows import CORE_NODES, FILE_INPUTS, FOLDER, NAMES  # noqa: E402

FROM_FOLDER = "(from the diffusers folder)"
TINY = {  # (width, height, frames sampled, frames saved) per family
    "1.5": (64, 48, 5, 5),
    "v2": (48, 32, 5, 5),
    "v1": (48, 32, 9, 5),  # v1 drops the first 4 decoded frames, as the reference does
}
TINY_GPUS = 2  # worker processes for a workflow shipped with several GPUs


@pytest.fixture(scope="module")
def server(models_root, models15_root, full_vocab_root, tmp_path_factory):  # noqa: F811
    with comfy_server((models_root, models15_root, full_vocab_root), tmp_path_factory) as running:
        yield running


@pytest.fixture(scope="module")
def start_image(server) -> str:
    return server.upload_image("workflow start image.png", start_image_png())


@pytest.fixture(scope="module")
def example_png(server) -> str:
    """input/example.png, which every ComfyUI ships and the workflows' Load Image names."""
    assert server.upload_image("example.png", start_image_png()) == "example.png"
    return "example.png"


def api_workflow(name: str) -> dict:
    return json.loads((FOLDER / "api" / f"{name}.json").read_text())


def nodes_of(prompt: dict, class_type: str) -> list[dict]:
    return [node["inputs"] for node in prompt.values() if node["class_type"] == class_type]


def remote_nodes(prompt: dict) -> list[dict]:
    """The inputs of the pack's WaveSpeed nodes (one node class per endpoint)."""
    return [node["inputs"] for node in prompt.values() if "WaveSpeed" in node["class_type"]]


def release_of(prompt: dict) -> str | None:
    """"1.5", "v1" or "v2" from the shipped transformer file; None for a remote workflow."""
    loaders = nodes_of(prompt, "HunyuanI2VLoadTransformer")
    if not loaders:
        return None
    model = loaders[0]["model_name"]
    if model.startswith("hunyuanvideo1.5_"):
        return "1.5"
    return "v2" if "v2_replace" in model else "v1"


def tiny(prompt: dict, name: str, image: str) -> dict:
    """The shipped prompt with tiny models, a tiny video and a test start image; other settings as shipped."""
    prompt = copy.deepcopy(prompt)
    release = release_of(prompt)
    for inputs in nodes_of(prompt, "LoadImage"):
        inputs["image"] = image
    for inputs in nodes_of(prompt, "SaveVideo"):
        inputs["filename_prefix"] = f"video/workflow_{name}"
    if release is None:
        for inputs in remote_nodes(prompt):
            inputs.update(seed=7, timeout=60, filename_prefix=f"wavespeed/workflow_{name}")
        return prompt
    width, height, frames, _ = TINY[release]
    for inputs in nodes_of(prompt, "HunyuanI2VLoadTransformer"):
        if inputs.get("gpus", 1) > 1:  # the worker pool: 2 gloo processes on this CPU server (the tiny models
            inputs["gpus"] = TINY_GPUS  # have 2 attention heads, which 4 or 8 processes cannot share)
        if release == "1.5":
            step_distilled = "step_distilled" in inputs["model_name"]
            inputs["model_name"] = "[diffusers] tiny15_meanflow" if step_distilled else "tiny15_comfy.safetensors"
        else:
            inputs["model_name"] = f"tiny_{release}.safetensors"
    for inputs in nodes_of(prompt, "HunyuanI2VLoadVAE"):
        inputs["vae_name"] = "tiny15_vae.safetensors" if release == "1.5" else "tiny_vae.safetensors"
    for inputs in nodes_of(prompt, "HunyuanI2VLoadTextEncoders"):
        if release == "1.5":  # ComfyUI's single files
            inputs.update(text_encoder=FULL_VOCAB_QWEN, vision="tiny_siglip.safetensors",
                          text_encoder_2="tiny_byt5.safetensors")
        else:  # the tiny llava file cannot take ComfyUI's real Llama-3 tokenizer: its diffusers folder
            inputs.update(text_encoder=f"[diffusers] tiny_{release}", vision=FROM_FOLDER, text_encoder_2=FROM_FOLDER)
    for inputs in nodes_of(prompt, "HunyuanI2VEncode"):
        inputs.update(width=width, height=height)
    for inputs in nodes_of(prompt, "HunyuanI2VSample"):
        inputs.update(steps=2, frames=frames, seed=0)
    for number, (title, model, upsampler) in enumerate(sr_stages(prompt), start=1):
        by_title = {node["_meta"]["title"]: node["inputs"] for node in prompt.values()}
        by_title[f"Load SR transformer ({title})"]["model_name"] = model
        by_title[f"Load latent upsampler ({title})"]["upsampler_name"] = upsampler
        by_title[f"Super-resolution to {title}"].update(width=width + 32 * number, height=height + 32 * number)
    return prompt


# The tiny SR files per stage resolution: ComfyUI's layout with its 720p header, Tencent's without a release.
TINY_SR = {"720p": ("tiny15_720p_sr_comfy.safetensors", "tiny_upsampler_720p.safetensors"),
           "1080p": ("tiny15_sr_tencent.safetensors", "tiny_upsampler_1080p.safetensors")}


def sr_stages(prompt: dict) -> list[tuple[str, str, str]]:
    """(stage resolution, tiny SR transformer, tiny upsampler) of each super-resolution stage, in order."""
    found = sorted(node["inputs"]["resolution"] for node in prompt.values()
                   if node["class_type"] == "HunyuanI2VSuperResolution")
    return [(resolution, *TINY_SR[resolution]) for resolution in sorted(found, key=lambda r: int(r[:-1]))]


def expected_size(prompt: dict, release: str) -> tuple[int, int]:
    """The saved video's (width, height): the last super-resolution stage's, else the tiny base size."""
    width, height, _, _ = TINY[release]
    stages = sr_stages(prompt)
    return (width + 32 * len(stages), height + 32 * len(stages))


# Display names a later ComfyUI gave a pinned core node (only the title changes; the workflows store none of them).
LATER_DISPLAY_NAMES = {"PreviewAny": ("Preview as Text",)}  # ComfyUI 0.8.0


def test_pinned_core_nodes_are_comfyuis(server):
    info = server.object_info
    for node_type, pinned in CORE_NODES.items():
        live = info[node_type]
        assert live["output"] == pinned["output"], node_type
        assert live["output_node"] == pinned["output_node"], node_type
        assert live["display_name"] in (pinned["display_name"], *LATER_DISPLAY_NAMES.get(node_type, ())), node_type
        declared = _declared_inputs(live)
        for section in ("required", "optional"):
            names = list(live.get("input_order", {}).get(section, live["input"].get(section, {})))
            assert names == list(pinned.get(section, {})), (node_type, section, names)
        for name, (kind, options) in {**pinned["required"], **pinned.get("optional", {})}.items():
            live_kind, live_options = _spec(declared[name])
            if kind == "FILES":
                assert live_kind == "COMBO" and live_options.get("image_upload") == options["image_upload"]
            elif isinstance(kind, list):
                assert live_kind == "COMBO" and live_options["options"] == kind, (node_type, name)
            else:
                assert live_kind == kind, (node_type, name, live_kind)
            for key in ("default", "min", "max"):
                if key in options:
                    assert live_options.get(key) == options[key], (node_type, name, key)


@pytest.mark.parametrize("name", NAMES)
def test_shipped_workflow_passes_comfyuis_validation_but_for_missing_files(name, server, example_png):
    """POST /prompt with the workflow as shipped: the only complaints may be model files this server lacks."""
    response = server.request("POST", "/prompt", json={"prompt": api_workflow(name), "client_id": "hyv-workflows"})
    if response.status_code == 200:  # every file present: it was queued; take it back
        server.request("POST", "/queue", json={"clear": True})
        server.request("POST", "/interrupt")
        return
    answer = response.json()
    assert response.status_code == 400 and answer.get("node_errors"), answer
    prompt = api_workflow(name)
    for node_id, found in answer["node_errors"].items():
        class_type = prompt[node_id]["class_type"]
        for error in found["errors"]:
            input_name = error.get("extra_info", {}).get("input_name")
            assert error["type"] == "value_not_in_list" and (class_type, input_name) in FILE_INPUTS, (
                f"{name}: ComfyUI refuses node {node_id} ({class_type}): {json.dumps(error)[:1000]}")


@pytest.mark.parametrize("name", NAMES)
def test_workflow_makes_a_video(name, server, start_image):
    release = release_of(api_workflow(name))
    prompt = tiny(api_workflow(name), name, start_image)
    remote = bool(remote_nodes(prompt))
    if remote and server.stand_in is None:
        pytest.skip(f"no WaveSpeed stand-in: {server.stand_in_reason}")
    submitted = len(server.stand_in.requests) if remote else 0
    entry = server.run(prompt, timeout=300 if remote else 600)
    assert_success(entry, server)
    videos = saved_videos(entry, prompt)
    assert len(videos) == 1, entry.get("outputs")
    path = server.output_file(videos[0])
    assert path.is_file() and path.stat().st_size > 0 and path.suffix == ".mp4", videos[0]
    assert path.is_relative_to(server.base / "output")
    frames, width, height = decode_mp4(path)
    if remote:
        assert frames > 0, error_report(entry)
        # the node's own endpoint was asked (WaveSpeed's model paths)
        paths = [path for method, path, _ in server.stand_in.requests[submitted:] if method == "POST"]
        endpoint = {"HunyuanVideoI2VWaveSpeed": "/api/v3/wavespeed-ai/hunyuan-video/i2v",
                    "HunyuanVideo15I2VWaveSpeed": "/api/v3/wavespeed-ai/hunyuan-video-1.5/image-to-video"}
        wanted = [endpoint[node["class_type"]] for node in prompt.values() if node["class_type"] in endpoint]
        assert wanted and all(path in paths for path in wanted), paths
        return
    saved = TINY[release][3]
    assert (frames, width, height) == (saved, *expected_size(prompt, release)), release
    texts = [line for inputs_id, node in prompt.items() if node["class_type"] == "PreviewAny"
             for line in entry["outputs"].get(inputs_id, {}).get("text", [])]
    # The loader's info (Preview Any) names the family and the release the shipped settings asked for.
    expected = {"1.5": "HunyuanVideo-1.5", "v1": "HunyuanVideo-I2V (13 B family) v1",
                "v2": "HunyuanVideo-I2V (13 B family) v2"}
    assert any(expected[release] in text for text in texts), texts
    shipped_model = nodes_of(api_workflow(name), "HunyuanI2VLoadTransformer")[0]["model_name"]
    if "step_distilled" in shipped_model:
        assert any("step-distilled" in text for text in texts), texts
    if "720p" in shipped_model and release == "1.5":
        assert any("CFG-distilled" in text for text in texts), texts
    if any(inputs.get("gpus", 1) > 1 for inputs in nodes_of(prompt, "HunyuanI2VLoadTransformer")):
        assert any(f"Split over {TINY_GPUS} GPUs" in text for text in texts), texts  # the worker pool sampled it
