"""The WaveSpeed client against the stand-in server: the normal path, keys, inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hyv_pack.hunyuan_i2v.wavespeed import client as ws
from hyv_pack.hunyuan_i2v.errors import UserInputError
from hyv_pack.hunyuan_i2v.wavespeed.errors import WaveSpeedAuthError
from hyv_pack.hunyuan_i2v.wavespeed.jobs import (
    I2VJob, assign_occurrences, encode_image, output_path, run_batch, size_for, status_text, JobStatus,
)
from hyv_pack.hunyuan_i2v.wavespeed.journal import COMPLETED, JobJournal
from hyv_pack.hunyuan_i2v.wavespeed.keys import API_KEY_ENV, API_KEY_FILE_ENV, KEY_FILE_NAME, resolve_api_key
from wavespeed_server import FAST_TIMING, StandInWaveSpeed


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


def image_job(color=(200, 40, 40), **fields):
    png, digest = encode_image(solid_image(color))
    return I2VJob(prompt=fields.pop("prompt", "a red square drifts"), image_png=png, image_digest=digest, **fields)


def run(server, tmp_path, jobs, **kwargs):
    kwargs.setdefault("settings", settings_for(server))
    return run_batch(jobs, api_key=server.api_key, output_dir=tmp_path / "out",
                     journal=JobJournal(tmp_path / "state"), **kwargs)


def test_uploaded_image_becomes_frames_and_a_saved_mp4(server, tmp_path):
    [result] = run(server, tmp_path, [image_job(seed=42, steps=12, duration=6, size="720*1280",
                                                enable_safety_checker=False)])

    assert (server.uploads, server.submits_received, server.tasks_created) == (1, 1, 1)
    task = server.tasks[result.task_id]
    assert task.payload == {"prompt": "a red square drifts", "image": task.payload["image"],
                            "num_inference_steps": 12, "duration": 6, "seed": 42, "size": "720*1280",
                            "enable_safety_checker": False}
    assert task.payload["image"].startswith(server.base_url + "/media/")
    assert result.frames.shape == (9, 48, 64, 3) and result.fps == pytest.approx(24)
    # The stand-in paints the video with the uploaded image's color: the PNG arrived intact.
    assert result.frames[..., 0].mean() > 0.7 and result.frames[..., 1].mean() < 0.3
    assert result.path.is_file() and result.path.parent == tmp_path / "out" / "wavespeed"
    assert result.path.name == f"hunyuan_i2v_{result.task_id}.mp4"
    assert result.video_url == f"{server.base_url}/outputs/{result.task_id}.mp4"
    assert result.inference_s == pytest.approx(1.234) and result.source == "new task" and not result.nsfw
    entry = JobJournal(tmp_path / "state").get(image_job(seed=42, steps=12, duration=6, size="720*1280",
                                                         enable_safety_checker=False).key)
    assert entry["state"] == COMPLETED and entry["local_file"] == str(result.path)


def test_image_url_is_submitted_without_upload(server, tmp_path):
    url = "https://example.invalid/start.png"
    [result] = run(server, tmp_path, [I2VJob(prompt="p", image_url=url, seed=3)])
    assert server.uploads == 0 and server.tasks[result.task_id].payload["image"] == url


def test_key_goes_to_the_api_only_never_to_output_hosts(server, tmp_path):
    run(server, tmp_path, [image_job(seed=1)])
    api_calls = server.headers_seen("/api/v3/")
    assert api_calls and all(h["Authorization"] == f"Bearer {server.api_key}" for h in api_calls)
    downloads = server.headers_seen("/outputs/")
    assert downloads and all("Authorization" not in h for h in downloads)


def test_status_updates_show_status_time_inference_and_price(server, tmp_path):
    seen = []
    run(server, tmp_path, [image_job(seed=9)], on_update=lambda statuses: seen.append(status_text(statuses)))
    text = "\n".join(seen)
    assert "processing" in text and "inference 1.2 s" in text and "done" in text
    assert "est. $0.40" in text and "published price" in text


def test_price_estimate_counts_only_new_runs():
    statuses = [JobStatus(0, "done", "t1", charged=True), JobStatus(1, "processing", "t2", charged=False)]
    assert status_text(statuses).startswith("WaveSpeed: 1/2 done - est. $0.40 (1 new run x $0.40")
    assert ws.estimate_price(3) == pytest.approx(1.20)


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
    assert ws.ClientSettings.from_env().base_url == ws.DEFAULT_BASE_URL


# ---------------------------------------------------------------- inputs

@pytest.mark.parametrize("fields, problem", [
    (dict(steps=1), "num_inference_steps"), (dict(steps=31), "num_inference_steps"),
    (dict(duration=4), "duration"), (dict(duration=11), "duration"),
    (dict(seed=-2), "seed"), (dict(seed=10_000_000_000), "seed"), (dict(size="640*480"), "size"),
])
def test_job_values_outside_the_endpoint_ranges_are_refused(fields, problem):
    with pytest.raises(UserInputError, match=problem):
        I2VJob(prompt="p", image_url="https://example.invalid/a.png", **fields)


def test_job_needs_exactly_one_image():
    with pytest.raises(UserInputError, match="exactly one image"):
        I2VJob(prompt="p")
    with pytest.raises(UserInputError, match="http"):
        I2VJob(prompt="p", image_url="C:/pictures/a.png")


def test_size_follows_orientation():
    assert size_for(1280, 720) == "1280*720" and size_for(512, 512) == "1280*720"
    assert size_for(720, 1280) == "720*1280"


def test_probe_image_size_reads_a_url(server):
    png, _ = encode_image(solid_image(height=90, width=40))
    server.media["portrait.png"] = png
    assert ws.probe_image_size(f"{server.base_url}/media/portrait.png", settings_for(server)) == (40, 90)
    with pytest.raises(UserInputError, match="choose a size"):
        ws.probe_image_size(f"{server.base_url}/media/none.png", settings_for(server))


def test_journal_key_covers_every_input_that_changes_the_video():
    base = image_job(seed=5)
    variants = [image_job(seed=6), image_job(seed=5, prompt="other"), image_job(seed=5, steps=20),
                image_job(seed=5, duration=7), image_job(seed=5, size="720*1280"),
                image_job(seed=5, enable_safety_checker=False), image_job((0, 0, 255), seed=5),
                I2VJob(prompt=base.prompt, image_url="https://example.invalid/a.png", seed=5)]
    keys = {job.key for job in variants}
    assert base.key not in keys and len(keys) == len(variants)
    assert image_job(seed=5).key == base.key
    assert "sha256:" in json.dumps(base.journal_inputs()) and "png" not in json.dumps(base.journal_inputs())


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
    assert ws.extract_status(data) == "completed"
    assert ws.extract_output_url(data) == "https://cdn.invalid/v.mp4"
    assert ws.extract_inference_s(data) == pytest.approx(61.2)
    assert ws.extract_nsfw(data) and not ws.extract_nsfw({"has_nsfw_contents": []})
    assert ws.extract_failure({"error": "blocked by moderation (1200)"}, {"code": 200}) == (1200, "blocked by moderation (1200)")
    assert ws.extract_failure({"error": {"code": 1402, "message": "unreachable"}}, {}) == (1402, "unreachable")
    assert ws.extract_failure({"error": "oops"}, {"code": 5003, "message": "busy"}) == (5003, "oops")
