"""The WaveSpeed client against the stand-in server: both endpoints' normal path, uploads, keys, inputs."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from hyv_pack.hunyuan_i2v.errors import UserInputError
from hyv_pack.hunyuan_i2v.wavespeed import client as ws
from hyv_pack.hunyuan_i2v.wavespeed import answers
from hyv_pack.hunyuan_i2v.wavespeed.connection import DEFAULT_BASE_URL
from hyv_pack.hunyuan_i2v.wavespeed.endpoints import ENDPOINTS, HUNYUAN_VIDEO_13B, HUNYUAN_VIDEO_15
from hyv_pack.hunyuan_i2v.wavespeed.errors import WaveSpeedAuthError
from hyv_pack.hunyuan_i2v.wavespeed.jobs import I2VJob, assign_occurrences, encode_image, orientation_choice, output_path
from hyv_pack.hunyuan_i2v.wavespeed.journal import COMPLETED, JobJournal
from hyv_pack.hunyuan_i2v.wavespeed.keys import API_KEY_ENV, API_KEY_FILE_ENV, KEY_FILE_NAME, resolve_api_key
from hyv_pack.hunyuan_i2v.wavespeed.runner import JobStatus, run_batch, status_text
from hyv_pack.hunyuan_i2v.wavespeed.uploads import TICKET_PATH
from wavespeed_server import FAST_TIMING, StandInWaveSpeed, decode_inline_image


@pytest.fixture
def server():
    with StandInWaveSpeed(processing_s=0.05) as stand_in:
        yield stand_in


def settings_for(server, **overrides):
    return ws.ClientSettings(base_url=server.base_url, **{**FAST_TIMING, **overrides})


def solid_image(color=(200, 40, 40), height=48, width=64):
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:] = color
    return pixels


def image_job(color=(200, 40, 40), prompt="a red square drifts", endpoint=HUNYUAN_VIDEO_13B, **settings):
    png, digest = encode_image(solid_image(color))
    return I2VJob(prompt, settings, endpoint, image_png=png, image_digest=digest)


def run(server, tmp_path, jobs, **kwargs):
    kwargs.setdefault("settings", settings_for(server))
    return run_batch(jobs, api_key=server.api_key, output_dir=tmp_path / "out",
                     journal=JobJournal(tmp_path / "state"), **kwargs)


# ---------------------------------------------------------------- the 13 B endpoint

def test_uploaded_image_becomes_frames_and_a_saved_mp4(server, tmp_path):
    settings = dict(seed=42, num_inference_steps=12, duration=6, size="720*1280", enable_safety_checker=False)
    [result] = run(server, tmp_path, [image_job(**settings)])

    assert (server.ticket_requests, server.puts, server.uploads, server.submits_received) == (1, 1, 1, 1)
    task = server.tasks[result.task_id]
    assert task.model == "wavespeed-ai/hunyuan-video/i2v"
    assert task.payload == {"prompt": "a red square drifts", "image": task.payload["image"], **settings}
    assert task.payload["image"].startswith(server.base_url + "/media/")
    assert result.frames.shape == (9, 48, 64, 3) and result.fps == pytest.approx(24)
    # The stand-in paints the video with the uploaded image's color: the PNG arrived intact.
    assert result.frames[..., 0].mean() > 0.7 and result.frames[..., 1].mean() < 0.3
    assert result.path.is_file() and result.path.parent == tmp_path / "out" / "wavespeed"
    assert result.path.name == f"hunyuan_i2v_{result.task_id}.mp4"
    assert result.video_url == f"{server.base_url}/outputs/{result.task_id}.mp4"
    assert result.inference_s == pytest.approx(1.234) and result.source == "new task" and not result.nsfw
    entry = JobJournal(tmp_path / "state").get(image_job(**settings).key)
    assert entry["state"] == COMPLETED and entry["local_file"] == str(result.path)


def test_upload_uses_the_ticket_route_and_sends_no_key_to_the_signed_url(server, tmp_path):
    run(server, tmp_path, [image_job(seed=1)])
    [ticket] = [h for method, path, h in server.requests if path == TICKET_PATH]
    assert ticket["Authorization"] == f"Bearer {server.api_key}"
    [put] = [(path, h) for method, path, h in server.requests if method == "PUT"]
    assert put[0].startswith("/signed-uploads/") and "signature=" in put[0]
    assert "Authorization" not in put[1] and put[1]["x-upload-token"]  # the ticket's own headers went along
    assert server.binary_uploads == 0


def test_older_binary_route_is_used_only_when_the_ticket_route_is_absent(server, tmp_path):
    server.ticket_route = False
    results = run(server, tmp_path, [image_job((250, 0, 0), seed=1), image_job((0, 0, 250), seed=1)],
                  concurrency=1)
    assert server.binary_uploads == 2 and server.puts == 0
    ticket_tries = [path for _, path, _ in server.requests if path == TICKET_PATH]
    assert len(ticket_tries) == 1  # the 404 is remembered for the rest of the batch
    assert results[0].frames[..., 0].mean() > 0.7 and results[1].frames[..., 2].mean() > 0.7


def test_image_url_is_submitted_without_upload(server, tmp_path):
    url = "https://example.invalid/start.png"
    [result] = run(server, tmp_path, [I2VJob("p", {"seed": 3}, image_url=url)])
    assert server.uploads == 0 and server.tasks[result.task_id].payload["image"] == url


def test_key_goes_to_the_api_only_never_to_output_or_upload_hosts(server, tmp_path):
    run(server, tmp_path, [image_job(seed=1)])
    api_calls = server.headers_seen("/api/v3/")
    assert api_calls and all(h["Authorization"] == f"Bearer {server.api_key}" for h in api_calls)
    for other in ("/outputs/", "/signed-uploads/"):
        seen = server.headers_seen(other)
        assert seen and all("Authorization" not in h for h in seen), other


def test_status_updates_show_status_time_inference_and_price(server, tmp_path):
    seen = []
    run(server, tmp_path, [image_job(seed=9)], on_update=lambda statuses: seen.append(status_text(statuses)))
    text = "\n".join(seen)
    assert "processing" in text and "inference 1.2 s" in text and "done" in text
    assert "est. $0.40" in text and "published price" in text


def test_price_estimate_counts_only_new_runs():
    flat = dict(price_usd=0.40, price_note=HUNYUAN_VIDEO_13B.price.describe({}))
    statuses = [JobStatus(0, "done", "t1", charged=True, **flat), JobStatus(1, "processing", "t2", **flat)]
    assert status_text(statuses).startswith("WaveSpeed: 1/2 done - est. $0.40 (1 new run x $0.40 published price)")


# ---------------------------------------------------------------- the 1.5 endpoint

def test_15_sends_the_image_inline_and_only_its_own_fields(server, tmp_path):
    job = image_job((30, 200, 60), prompt="", endpoint=HUNYUAN_VIDEO_15, resolution="480p", duration=8, seed=7)
    [result] = run(server, tmp_path, [job])
    task = server.tasks[result.task_id]
    assert task.model == "wavespeed-ai/hunyuan-video-1.5/image-to-video"
    assert set(task.payload) == {"image", "resolution", "duration", "seed"}  # an empty prompt is left out
    assert (task.payload["resolution"], task.payload["duration"], task.payload["seed"]) == ("480p", 8, 7)
    assert task.payload["image"].startswith("data:image/png;base64,")
    assert decode_inline_image(task.payload["image"]) == job.image_png
    assert server.ticket_requests == server.binary_uploads == server.uploads == 0  # no upload at all
    assert result.frames[..., 1].mean() > 0.7  # the server read the inline image
    assert result.path.name == f"hunyuan_i2v_{result.task_id}.mp4"


def test_15_defaults_and_price(server, tmp_path):
    job = I2VJob("a boat", {}, HUNYUAN_VIDEO_15, image_url="https://example.invalid/boat.png")
    assert job.settings == {"resolution": "720p", "duration": 5, "seed": -1} and job.random_seed
    assert job.price_usd == pytest.approx(0.20)
    assert I2VJob("a", {"resolution": "480p", "duration": 8}, HUNYUAN_VIDEO_15,
                  image_url="https://example.invalid/a.png").price_usd == pytest.approx(0.16)
    note = HUNYUAN_VIDEO_15.price.describe(job.settings)
    assert "5 s at 720p x $0.04/s" in note and "assumed price" in note
    seen = []
    [result] = run(server, tmp_path, [job], on_update=lambda st: seen.append(status_text(st)))
    assert server.tasks[result.task_id].payload == {"image": job.image_url, "prompt": "a boat", **job.settings}
    assert any("est. $0.20 (1 new run x $0.20 = 5 s at 720p" in text for text in seen)


def test_endpoints_are_a_table_of_data():
    assert set(ENDPOINTS.values()) == {HUNYUAN_VIDEO_13B, HUNYUAN_VIDEO_15}
    for endpoint in ENDPOINTS.values():
        assert endpoint.path == f"/api/v3/{endpoint.model_id}"
        defaults = {p.name: p.default for p in endpoint.params}
        assert endpoint.settings({}) == defaults  # every default is a value the endpoint takes
        assert endpoint.price.estimate(defaults) > 0


@pytest.mark.parametrize("endpoint, settings, problem", [
    (HUNYUAN_VIDEO_13B, dict(num_inference_steps=1), "num_inference_steps is 1; .* accepts 2..30"),
    (HUNYUAN_VIDEO_13B, dict(num_inference_steps=31), "num_inference_steps"),
    (HUNYUAN_VIDEO_13B, dict(duration=4), "duration"), (HUNYUAN_VIDEO_13B, dict(duration=11), "duration"),
    (HUNYUAN_VIDEO_13B, dict(seed=-2), "seed"), (HUNYUAN_VIDEO_13B, dict(seed=10_000_000_000), "seed"),
    (HUNYUAN_VIDEO_13B, dict(size="640*480"), "choose one of 1280\\*720, 720\\*1280"),
    (HUNYUAN_VIDEO_13B, dict(resolution="720p"), "takes no resolution"),
    (HUNYUAN_VIDEO_15, dict(duration=6), "duration 6 is not offered .* choose one of 5, 8"),
    (HUNYUAN_VIDEO_15, dict(resolution="1080p"), "resolution"),
    (HUNYUAN_VIDEO_15, dict(seed=2_147_483_648), "seed"),
    (HUNYUAN_VIDEO_15, dict(num_inference_steps=20), "takes no num_inference_steps"),
    (HUNYUAN_VIDEO_15, dict(seed=True), "whole number"),
])
def test_values_an_endpoint_does_not_allow_are_refused_before_any_request(endpoint, settings, problem):
    with pytest.raises(UserInputError, match=problem):
        I2VJob("p", settings, endpoint, image_url="https://example.invalid/a.png")


def test_empty_prompt_is_refused_only_where_the_endpoint_needs_one():
    with pytest.raises(UserInputError, match="prompt is empty"):
        I2VJob(" ", {}, HUNYUAN_VIDEO_13B, image_url="https://example.invalid/a.png")
    I2VJob("", {}, HUNYUAN_VIDEO_15, image_url="https://example.invalid/a.png")


def test_job_needs_exactly_one_image():
    with pytest.raises(UserInputError, match="exactly one image"):
        I2VJob("p")
    with pytest.raises(UserInputError, match="http"):
        I2VJob("p", image_url="C:/pictures/a.png")


def test_auto_choice_follows_orientation():
    size = HUNYUAN_VIDEO_13B.param("size")
    assert orientation_choice(size, 1280, 720) == "1280*720" and orientation_choice(size, 512, 512) == "1280*720"
    assert orientation_choice(size, 720, 1280) == "720*1280"


def test_probe_image_size_reads_a_url(server):
    png, _ = encode_image(solid_image(height=90, width=40))
    server.media["portrait.png"] = png
    assert ws.probe_image_size(f"{server.base_url}/media/portrait.png", settings_for(server)) == (40, 90)
    with pytest.raises(UserInputError, match="choose a size"):
        ws.probe_image_size(f"{server.base_url}/media/none.png", settings_for(server))


def test_journal_key_covers_every_input_that_changes_the_video():
    base = image_job(seed=5)
    variants = [image_job(seed=6), image_job(seed=5, prompt="other"), image_job(seed=5, num_inference_steps=20),
                image_job(seed=5, duration=7), image_job(seed=5, size="720*1280"),
                image_job(seed=5, enable_safety_checker=False), image_job((0, 0, 255), seed=5),
                I2VJob(base.prompt, {"seed": 5}, image_url="https://example.invalid/a.png"),
                image_job(seed=5, endpoint=HUNYUAN_VIDEO_15), image_job(seed=5, endpoint=HUNYUAN_VIDEO_15, duration=8)]
    keys = {job.key for job in variants}
    assert base.key not in keys and len(keys) == len(variants)
    assert image_job(seed=5).key == base.key
    text = json.dumps(image_job(seed=5, endpoint=HUNYUAN_VIDEO_15).journal_inputs())
    assert "sha256:" in text and "base64" not in text and base64.b64encode(base.image_png[:30]).decode() not in text


def test_journal_keys_of_the_13b_endpoint_did_not_change():
    # Entries written before endpoints became data must still resume.
    job = I2VJob("p", {"seed": 5}, image_url="https://example.invalid/a.png")
    assert job.journal_inputs() == {"model": "wavespeed-ai/hunyuan-video/i2v", "prompt": "p",
                                    "image": "https://example.invalid/a.png", "num_inference_steps": 30,
                                    "duration": 5, "seed": 5, "size": "1280*720", "enable_safety_checker": True,
                                    "occurrence": 0}


def test_identical_jobs_in_a_batch_get_their_own_keys():
    numbered = assign_occurrences([image_job(seed=-1), image_job(seed=-1), image_job((0, 0, 255), seed=-1)])
    assert [job.occurrence for job in numbered] == [0, 1, 0]
    assert len({job.key for job in numbered}) == 3


@pytest.mark.parametrize("prefix", ["../escape", "/abs/path", "a/../../b", "C:/x"])
def test_filename_prefix_stays_inside_the_output_folder(tmp_path, prefix):
    with pytest.raises(UserInputError, match="filename_prefix"):
        output_path(tmp_path, prefix, "task")


def test_extractors_read_the_documented_fields():
    data = {"status": "COMPLETED", "outputs": ["", "https://cdn.invalid/v.mp4"], "timings": {"inference": 61200},
            "has_nsfw_contents": [False, True]}
    assert answers.extract_status(data) == "completed"
    assert answers.extract_output_url(data) == "https://cdn.invalid/v.mp4"
    assert answers.extract_inference_s(data) == pytest.approx(61.2)
    assert answers.extract_nsfw(data) and not answers.extract_nsfw({"has_nsfw_contents": []})
    assert answers.extract_failure({"error": "blocked by moderation (1200)"}, {"code": 200}) == (
        1200, "blocked by moderation (1200)")
    assert answers.extract_failure({"error": {"code": 1402, "message": "unreachable"}}, {}) == (1402, "unreachable")
    assert answers.extract_failure({"error": "oops"}, {"code": 5003, "message": "busy"}) == (5003, "oops")


# ---------------------------------------------------------------- keys

@pytest.fixture
def clean_key_env(monkeypatch):
    for name in (API_KEY_ENV, API_KEY_FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_key_from_environment_wins(clean_key_env, tmp_path):
    clean_key_env.setenv(API_KEY_ENV, "  env-key  ")
    (tmp_path / KEY_FILE_NAME).write_text("file-key")
    assert resolve_api_key(tmp_path) == "env-key"


def test_key_from_state_folder_file_skips_comments(clean_key_env, tmp_path):
    (tmp_path / KEY_FILE_NAME).write_text("# my WaveSpeed key\n\nfile-key\n")
    assert resolve_api_key(tmp_path) == "file-key"


def test_key_from_named_file(clean_key_env, tmp_path):
    named = tmp_path / "elsewhere.txt"
    named.write_text("named-key")
    clean_key_env.setenv(API_KEY_FILE_ENV, str(named))
    assert resolve_api_key(tmp_path / "state") == "named-key"
    clean_key_env.setenv(API_KEY_FILE_ENV, str(tmp_path / "missing.txt"))
    with pytest.raises(WaveSpeedAuthError, match="missing.txt"):
        resolve_api_key(tmp_path)


def test_missing_key_says_how_to_set_it(clean_key_env, tmp_path):
    with pytest.raises(WaveSpeedAuthError) as caught:
        resolve_api_key(tmp_path)
    message = str(caught.value)
    assert API_KEY_ENV in message and str(tmp_path / KEY_FILE_NAME) in message and API_KEY_FILE_ENV in message


def test_key_with_inner_whitespace_is_refused_without_echoing_it(clean_key_env, tmp_path):
    clean_key_env.setenv(API_KEY_ENV, "abc def-secret")
    with pytest.raises(WaveSpeedAuthError) as caught:
        resolve_api_key(tmp_path)
    assert "def-secret" not in str(caught.value)


def test_base_url_override(monkeypatch):
    monkeypatch.setenv(ws.BASE_URL_ENV, "http://127.0.0.1:9/proxy/")
    assert ws.ClientSettings.from_env().base_url == "http://127.0.0.1:9/proxy"
    monkeypatch.delenv(ws.BASE_URL_ENV)
    assert ws.ClientSettings.from_env().base_url == DEFAULT_BASE_URL
