"""The WaveSpeed nodes as ComfyUI calls them, and the API key staying secret everywhere."""

from __future__ import annotations

import logging
import math
import socket
import traceback

import pytest
import torch

import hyv_pack
from hyv_pack.hunyuan_i2v.wavespeed import client as ws
from hyv_pack.hunyuan_i2v.errors import UserInputError
from hyv_pack.hunyuan_i2v.wavespeed.endpoints import HUNYUAN_VIDEO_13B, HUNYUAN_VIDEO_15
from hyv_pack.hunyuan_i2v.wavespeed.errors import WaveSpeedAuthError, WaveSpeedInterrupted
from hyv_pack.hunyuan_i2v.wavespeed.keys import API_KEY_ENV, API_KEY_FILE_ENV, KEY_FILE_NAME
from hyv_pack.nodes import comfy_bridge, wavespeed_node
from hyv_pack.nodes.wavespeed_node import HunyuanVideo15I2VWaveSpeed, HunyuanVideoI2VWaveSpeed
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


def generate15(image=None, **overrides):
    inputs = dict(prompt="waves roll in", resolution="720p", duration=5, seed=5, timeout=60, concurrency=2,
                  filename_prefix="wavespeed/test15", image=image, image_url="", unique_id="13")
    inputs.update(overrides)
    return HunyuanVideo15I2VWaveSpeed().generate(**inputs)


# ---------------------------------------------------------------- the nodes

NODES = [(HunyuanVideoI2VWaveSpeed, HUNYUAN_VIDEO_13B), (HunyuanVideo15I2VWaveSpeed, HUNYUAN_VIDEO_15)]


def test_nodes_are_registered_with_the_pack():
    for cls, _ in NODES:
        name = cls.__name__
        assert hyv_pack.NODE_CLASS_MAPPINGS[name] is cls and name in hyv_pack.NODE_DISPLAY_NAME_MAPPINGS
        assert cls.CATEGORY == "HunyuanVideo I2V/remote"
    assert "13 B" in hyv_pack.NODE_DISPLAY_NAME_MAPPINGS["HunyuanVideoI2VWaveSpeed"]
    assert "1.5" in hyv_pack.NODE_DISPLAY_NAME_MAPPINGS["HunyuanVideo15I2VWaveSpeed"]


@pytest.mark.parametrize("cls, endpoint", NODES, ids=["13b", "1.5"])
def test_widgets_are_read_from_the_endpoint_table(cls, endpoint):
    spec = cls.INPUT_TYPES()
    required = spec["required"]
    names = list(required)
    assert names[0] == "prompt" and names[-3:] == ["timeout", "concurrency", "filename_prefix"]
    assert names[1:-3] == [p.name for p in endpoint.params]  # only what the endpoint takes, in its order
    for param in endpoint.params:
        kind, options = required[param.name]
        if param.kind == "int":
            assert (kind, options["min"], options["max"], options["default"]) == (
                "INT", param.low, param.high, param.default)
        elif param.kind == "choice":
            assert kind == (["auto", *param.choices] if param.auto_by_orientation else list(param.choices))
            assert options["default"] in kind
        else:
            assert kind == "BOOLEAN" and options["default"] is param.default
    for name in ("timeout", "concurrency"):
        options = required[name][1]
        assert options["min"] <= options["default"] <= options["max"], name
    assert required["seed"][1]["control_after_generate"]
    assert spec["optional"]["image"][0] == "IMAGE" and spec["hidden"] == {"unique_id": "UNIQUE_ID"}
    every_name = [n for section in spec.values() for n in section]
    assert not any("key" in name.lower() or "token" in name.lower() for name in every_name)


def test_the_table_holds_the_published_ranges():
    # What WaveSpeed's pages say, checked once here rather than copied into the nodes.
    required = HunyuanVideoI2VWaveSpeed.INPUT_TYPES()["required"]
    assert (required["num_inference_steps"][1]["min"], required["num_inference_steps"][1]["max"]) == (2, 30)
    assert (required["duration"][1]["min"], required["duration"][1]["max"], required["duration"][1]["default"]) == (5, 10, 5)
    assert (required["seed"][1]["min"], required["seed"][1]["max"]) == (-1, 9_999_999_999)
    assert required["size"][0] == ["auto", "1280*720", "720*1280"] and required["size"][1]["default"] == "auto"
    required15 = HunyuanVideo15I2VWaveSpeed.INPUT_TYPES()["required"]
    assert required15["resolution"] == (["480p", "720p"], required15["resolution"][1])
    assert required15["resolution"][1]["default"] == "720p"
    assert required15["duration"][0] == [5, 8] and required15["duration"][1]["default"] == 5


@pytest.mark.parametrize("cls", [cls for cls, _ in NODES], ids=["13b", "1.5"])
def test_is_changed_forces_a_rerun_only_for_a_random_seed(cls):
    changed = cls.IS_CHANGED
    widgets = dict(prompt="p", timeout=600, concurrency=2, filename_prefix="x", image_url="")
    assert math.isnan(changed(seed=-1, **widgets))  # NaN never equals the last value: ComfyUI runs the node
    assert math.isnan(changed(**widgets))           # a seed fed by a link is unknown here: run (the journal reuses)
    # A fixed seed leaves the decision to ComfyUI's own cache, which sees every widget.
    assert changed(seed=7, **widgets) == changed(seed=8, **{**widgets, "prompt": "q"}) == changed(seed=7)


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


def test_15_node_sends_the_image_inline_and_shows_its_price(node_env, server, tmp_path):
    output = generate15(image_batch((30, 160, 220), (200, 30, 30)), resolution="480p", duration=8, seed=-1)
    frames, _, url, task_ids = output["result"]
    assert frames.shape == (18, 48, 64, 3) and len(task_ids.split("\n")) == 2
    for task_id in task_ids.split("\n"):
        payload = server.tasks[task_id].payload
        assert payload["image"].startswith("data:image/png;base64,") and payload["resolution"] == "480p"
        assert set(payload) == {"image", "prompt", "resolution", "duration", "seed"}
    assert server.uploads == server.ticket_requests == 0
    assert frames[:9, ..., 2].mean() > 0.7 and frames[9:, ..., 0].mean() > 0.7
    assert output["ui"]["images"][0]["subfolder"] == "wavespeed"
    assert any("est. $0.32 (2 new runs x $0.16 = 8 s at 480p" in text and "assumed price" in text
               for text in node_env)


def test_15_node_takes_an_image_url_without_reading_it(node_env, server):
    _, _, _, task_id = generate15(image_url="https://example.invalid/start.png")["result"]
    assert server.tasks[task_id].payload["image"] == "https://example.invalid/start.png"
    assert not server.headers_seen("/media/")


def test_value_the_endpoint_does_not_take_is_refused_before_anything_is_sent(node_env, server):
    with pytest.raises(UserInputError, match="duration 6 is not offered .* choose one of 5, 8"):
        generate15(image_batch((1, 2, 3)), duration=6)
    with pytest.raises(UserInputError, match="prompt is empty"):
        generate(image_batch((1, 2, 3)), prompt="  ")
    assert server.requests == []


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


@pytest.mark.parametrize("run_node", [generate, generate15], ids=["13b", "1.5"])
def test_interrupt_stops_the_node_and_keeps_the_task(node_env, server, monkeypatch, run_node):
    server.outcomes.append(Outcome("hold"))
    poll = server.hold("result")
    monkeypatch.setattr(comfy_bridge, "interrupt_requested", lambda: poll.arrived >= 1)
    with pytest.raises(WaveSpeedInterrupted):
        run_node(image_batch((5, 5, 5)), seed=-1)
    monkeypatch.setattr(comfy_bridge, "interrupt_requested", lambda: False)
    server.release_all()
    _, _, _, task_id = run_node(image_batch((5, 5, 5)), seed=-1)["result"]
    assert server.submits_received == 1 and task_id in server.tasks


# ---------------------------------------------------------------- the key stays secret

def _scenarios(server):
    """Runs that succeed and runs that fail in every way that could carry the key."""
    yield "success", {}
    yield "1.5 success", {"node": generate15}
    server.inject("ticket", Fault(status=401, message=f"key {SECRET} is not valid"))
    yield "ticket refused echoing the key", {}
    server.inject("put", Fault(status=403, message=f"signed for {SECRET}"))
    yield "signed upload refused echoing the key", {}
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
            output = options.get("node", generate)(image_batch((number * 20, 40, 90)), seed=-1)
        except Exception as exc:  # noqa: BLE001 - every failure text is scanned
            outcomes.append((name, "error"))
            seen += [str(exc), repr(exc), "".join(traceback.format_exception(exc)), repr(exc.args)]
        else:
            outcomes.append((name, "ok"))
            seen += [repr(output["ui"]), repr(output["result"][2:]), repr(output["result"][1])]
    succeeding = ("success", "1.5 success", "poll retries")
    assert all(dict(outcomes)[name] == "ok" for name in succeeding), outcomes
    assert [o for n, o in outcomes if n not in succeeding] == ["error"] * 8
    seen += node_env + [caplog.text]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    leaks = [text for text in seen if SECRET in text]
    assert not leaks, leaks[0][:500]
    assert "[hidden API key]" in "".join(seen)  # the echoes were there, and were scrubbed
    assert all("Authorization" not in h for h in server.headers_seen("/outputs/"))
    assert all("Authorization" not in h for h in server.headers_seen("/signed-uploads/"))
