"""The WaveSpeed node as ComfyUI calls it, and the API key staying secret everywhere."""

from __future__ import annotations

import logging
import socket
import traceback

import pytest
import torch

import hyv_pack
from hyv_pack.hunyuan_i2v.wavespeed import client as ws
from hyv_pack.hunyuan_i2v.errors import UserInputError
from hyv_pack.hunyuan_i2v.wavespeed.errors import WaveSpeedAuthError, WaveSpeedInterrupted
from hyv_pack.hunyuan_i2v.wavespeed.keys import API_KEY_ENV, API_KEY_FILE_ENV, KEY_FILE_NAME
from hyv_pack.nodes import comfy_bridge, wavespeed_node
from hyv_pack.nodes.wavespeed_node import HunyuanVideoI2VWaveSpeed
from test_wavespeed_client import solid_image
from wavespeed_server import FAST_TIMING, Fault, Outcome, StandInWaveSpeed

SECRET = "ws-LEAKCHECK-9f3a1c7e5b2d4a68"


@pytest.fixture
def server():
    with StandInWaveSpeed(api_key=SECRET, processing_s=0.05) as stand_in:
        yield stand_in


@pytest.fixture
def node_env(monkeypatch, tmp_path, server):
    """ComfyUI's folders, the key and the API base as a user would set them, with test timing."""
    monkeypatch.setenv("HUNYUAN_I2V_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("HUNYUAN_I2V_STATE", str(tmp_path / "user"))
    monkeypatch.setenv(API_KEY_ENV, SECRET)
    monkeypatch.delenv(API_KEY_FILE_ENV, raising=False)
    monkeypatch.setenv(ws.BASE_URL_ENV, server.base_url)
    monkeypatch.setattr(wavespeed_node, "client_settings", lambda: ws.ClientSettings.from_env(**FAST_TIMING))
    texts: list[str] = []
    monkeypatch.setattr(comfy_bridge, "node_text_sender", lambda node_id: texts.append)
    return texts


def image_batch(*colors, height=48, width=64):
    return torch.stack([torch.from_numpy(solid_image(c, height, width)).float() / 255 for c in colors])


def generate(image=None, **overrides):
    inputs = dict(prompt="waves roll in", num_inference_steps=30, duration=5, seed=5, size="auto",
                  enable_safety_checker=True, timeout=60, concurrency=2, filename_prefix="wavespeed/test",
                  image=image, image_url="", unique_id="12")
    inputs.update(overrides)
    return HunyuanVideoI2VWaveSpeed().generate(**inputs)


# ---------------------------------------------------------------- the node

def test_node_is_registered_with_the_pack():
    assert hyv_pack.NODE_CLASS_MAPPINGS["HunyuanVideoI2VWaveSpeed"] is HunyuanVideoI2VWaveSpeed
    assert "HunyuanVideoI2VWaveSpeed" in hyv_pack.NODE_DISPLAY_NAME_MAPPINGS
    assert HunyuanVideoI2VWaveSpeed.CATEGORY == "HunyuanVideo I2V/remote"


def test_inputs_mirror_the_endpoint_and_defaults_are_valid():
    spec = HunyuanVideoI2VWaveSpeed.INPUT_TYPES()
    required = spec["required"]
    for name in ("num_inference_steps", "duration", "seed", "timeout", "concurrency"):
        options = required[name][1]
        assert options["min"] <= options["default"] <= options["max"], name
    assert (required["num_inference_steps"][1]["min"], required["num_inference_steps"][1]["max"]) == (2, 30)
    assert required["num_inference_steps"][1]["default"] == 30
    assert (required["duration"][1]["min"], required["duration"][1]["max"], required["duration"][1]["default"]) == (5, 10, 5)
    assert (required["seed"][1]["min"], required["seed"][1]["max"], required["seed"][1]["default"]) == (-1, 9_999_999_999, -1)
    assert required["size"][0] == ["auto", "1280*720", "720*1280"] and required["size"][1]["default"] in required["size"][0]
    assert required["enable_safety_checker"][1]["default"] is True
    assert required["concurrency"][1]["default"] == 2
    assert spec["optional"]["image"][0] == "IMAGE" and spec["hidden"] == {"unique_id": "UNIQUE_ID"}
    every_name = [n for section in spec.values() for n in section]
    assert not any("key" in name.lower() or "token" in name.lower() for name in every_name)


def test_random_seed_is_always_changed_fixed_seed_is_stable():
    widgets = dict(prompt="p", num_inference_steps=30, duration=5, size="auto", enable_safety_checker=True,
                   timeout=600, concurrency=2, filename_prefix="x", image_url="")
    changed = HunyuanVideoI2VWaveSpeed.IS_CHANGED
    assert changed(seed=-1, **widgets) != changed(seed=-1, **widgets)
    assert changed(seed=7, **widgets) == changed(seed=7, **widgets)
    assert changed(seed=7, **widgets) == changed(seed=7, **{**widgets, "timeout": 900, "concurrency": 4})
    assert changed(seed=7, **widgets) != changed(seed=7, **{**widgets, "prompt": "q"})
    assert changed(seed=7, **widgets) != changed(seed=8, **widgets)


def test_node_returns_frames_url_id_and_previews_the_saved_mp4(node_env, server, tmp_path):
    output = generate(image_batch((30, 160, 220)))
    frames, video, url, task_id = output["result"]
    assert frames.shape == (9, 48, 64, 3) and frames.dtype == torch.float32
    assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
    assert video is None  # no ComfyUI here; inside ComfyUI this is core's VIDEO
    assert url == f"{server.base_url}/outputs/{task_id}.mp4" and task_id in server.tasks
    [preview] = output["ui"]["images"]
    assert output["ui"]["animated"] == (True,)
    assert preview == {"filename": f"test_{task_id}.mp4", "subfolder": "wavespeed", "type": "output"}
    assert (tmp_path / "output" / "wavespeed" / preview["filename"]).is_file()
    assert server.tasks[task_id].payload["size"] == "1280*720"
    assert any("est. $0.40" in text for text in node_env)


def test_auto_size_follows_a_portrait_image(node_env, server):
    _, _, _, task_id = generate(image_batch((10, 10, 10), height=96, width=40))["result"]
    assert server.tasks[task_id].payload["size"] == "720*1280"


def test_auto_size_for_an_image_url_reads_the_image(node_env, server):
    server.media["tall.png"] = ws_png(height=80, width=30)
    _, _, _, task_id = generate(image_url=f"{server.base_url}/media/tall.png")["result"]
    assert server.tasks[task_id].payload["size"] == "720*1280" and server.uploads == 0


def ws_png(height, width):
    from hyv_pack.hunyuan_i2v.wavespeed.jobs import encode_image

    return encode_image(solid_image((0, 0, 0), height, width))[0]


def test_a_batch_makes_one_task_per_image_in_order(node_env, server):
    output = generate(image_batch((250, 0, 0), (0, 0, 250)), seed=-1)
    frames, _, urls, ids = output["result"]
    assert frames.shape[0] == 18 and len(ids.split("\n")) == 2 and len(urls.split("\n")) == 2
    assert frames[:9, ..., 0].mean() > 0.7 and frames[9:, ..., 2].mean() > 0.7
    assert [p["filename"] for p in output["ui"]["images"]] == [f"test_{i}.mp4" for i in ids.split("\n")]


def test_no_image_is_a_clear_error(node_env, server):
    with pytest.raises(UserInputError, match="connect an IMAGE"):
        generate()
    assert server.submits_received == 0


def test_missing_key_names_the_env_var_and_the_key_file(node_env, monkeypatch, tmp_path, server):
    monkeypatch.delenv(API_KEY_ENV)
    with pytest.raises(WaveSpeedAuthError) as caught:
        generate(image_batch((1, 2, 3)))
    key_file = comfy_bridge.state_directory() / KEY_FILE_NAME
    assert API_KEY_ENV in str(caught.value) and str(key_file) in str(caught.value)
    assert server.submits_received == 0

    key_file.write_text(SECRET + "\n")
    _, _, _, task_id = generate(image_batch((1, 2, 3)))["result"]
    assert task_id in server.tasks


def test_interrupt_stops_the_node_and_keeps_the_task(node_env, server, monkeypatch):
    server.outcomes.append(Outcome("hold"))
    monkeypatch.setattr(comfy_bridge, "interrupt_requested", lambda: server.polls >= 2)
    with pytest.raises(WaveSpeedInterrupted):
        generate(image_batch((5, 5, 5)), seed=-1)
    monkeypatch.setattr(comfy_bridge, "interrupt_requested", lambda: False)
    server.release_all()
    _, _, _, task_id = generate(image_batch((5, 5, 5)), seed=-1)["result"]
    assert server.submits_received == 1 and task_id in server.tasks


# ---------------------------------------------------------------- the key stays secret

def _scenarios(server):
    """Runs that succeed and runs that fail in every way that could carry the key."""
    yield "success", {}
    server.inject("submit", Fault(status=400, message=f"bad request from key {SECRET}"))
    yield "400 echoing the key", {}
    server.inject("submit", Fault(status=401, message=f"key {SECRET} is not valid"))
    yield "401 echoing the key", {}
    server.outcomes.append(Outcome("failed", code=1403, message=f"failed for Bearer {SECRET}"))
    yield "failed task echoing the key", {}
    server.inject("submit", Fault(reset=True))
    yield "reset submit", {}
    server.inject("result", Fault(status=503, message=SECRET), Fault(status=502, message=SECRET))
    yield "poll retries", {}
    server.damaged_outputs = True
    yield "damaged download", {}
    server.damaged_outputs = False
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield "refused connection to a URL holding the key", {"base": f"http://127.0.0.1:{port}/{SECRET}"}


def test_the_key_appears_nowhere(node_env, server, monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3's and requests' own debug lines too
    seen: list[str] = list(node_env)
    outcomes = []
    for number, (name, options) in enumerate(_scenarios(server)):
        if "base" in options:
            monkeypatch.setenv(ws.BASE_URL_ENV, options["base"])
        try:
            output = generate(image_batch((number * 20, 40, 90)), seed=-1)
        except Exception as exc:  # noqa: BLE001 - every failure text is scanned
            outcomes.append((name, "error"))
            seen += [str(exc), repr(exc), "".join(traceback.format_exception(exc)), repr(exc.args)]
        else:
            outcomes.append((name, "ok"))
            seen += [repr(output["ui"]), repr(output["result"][2:]), repr(output["result"][1])]
    assert dict(outcomes)["success"] == "ok" and dict(outcomes)["poll retries"] == "ok"
    assert [o for n, o in outcomes if n not in ("success", "poll retries")] == ["error"] * 6
    seen += node_env + [caplog.text]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    leaks = [text for text in seen if SECRET in text]
    assert not leaks, leaks[0][:500]
    assert "[hidden API key]" in "".join(seen)  # the echoes were there, and were scrubbed
    assert all("Authorization" not in h for h in server.headers_seen("/outputs/"))
