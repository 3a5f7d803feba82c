"""Nothing paid is lost: the journal resumes tasks after an interrupt, a
timeout or a killed process; batches keep input order and their concurrency."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hyv_pack.hunyuan_i2v.wavespeed.endpoints import HUNYUAN_VIDEO_15
from hyv_pack.hunyuan_i2v.wavespeed.errors import WaveSpeedInterrupted, WaveSpeedTimeout
from hyv_pack.hunyuan_i2v.wavespeed.jobs import I2VJob
from hyv_pack.hunyuan_i2v.wavespeed.journal import COMPLETED, PENDING, JobJournal
from hyv_pack.hunyuan_i2v.wavespeed.runner import WaveSpeedBatchError, run_batch
from test_wavespeed_client import image_job, settings_for
from wavespeed_server import Outcome, StandInWaveSpeed

TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture
def server():
    with StandInWaveSpeed(processing_s=0.05) as stand_in:
        yield stand_in


def run(server, tmp_path, jobs, **kwargs):
    kwargs.setdefault("settings", settings_for(server))
    return run_batch(jobs, api_key=server.api_key, output_dir=tmp_path / "out",
                     journal=JobJournal(tmp_path / "state"), **kwargs)


@pytest.mark.parametrize("endpoint", [None, HUNYUAN_VIDEO_15], ids=["13b", "1.5"])
def test_interrupt_while_polling_stops_at_once_and_the_rerun_resumes(server, tmp_path, endpoint):
    job = image_job(seed=-1, **({"endpoint": endpoint} if endpoint else {}))
    server.outcomes.append(Outcome("hold"))
    poll = server.hold("result")
    with pytest.raises(WaveSpeedInterrupted):
        run(server, tmp_path, [job], interrupted=lambda: poll.arrived >= 1)
    assert server.polls == 1  # the worker left the held poll and sent no other
    [entry] = JobJournal(tmp_path / "state").entries().values()
    assert entry["state"] == PENDING and entry["random_seed"]

    server.release_all()
    [result] = run(server, tmp_path, [job])
    assert result.source == "resumed task" and result.task_id == entry["task_id"]
    assert server.submits_received == 1 and server.uploads == (0 if endpoint else 1)


def test_timeout_then_rerun_waits_for_the_same_task(server, tmp_path):
    job = image_job(seed=123)
    server.outcomes.append(Outcome("hold"))
    with pytest.raises(WaveSpeedTimeout) as caught:
        run(server, tmp_path, [job], timeout_s=0.3)
    server.release_all()
    [result] = run(server, tmp_path, [job])
    assert result.task_id == caught.value.task_id and server.submits_received == 1


def test_killed_process_mid_poll_is_resumed_by_the_rerun(server, tmp_path):
    """A real crash: the first run is a separate process killed while polling."""
    job = I2VJob("crash test", {"seed": 77}, image_url="https://example.invalid/start.png")
    server.outcomes.append(Outcome("hold"))
    script = tmp_path / "first_run.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(TESTS_DIR)!r})
        import conftest  # loads the pack as hyv_pack
        from hyv_pack.hunyuan_i2v.wavespeed import client as ws
        from hyv_pack.hunyuan_i2v.wavespeed.jobs import I2VJob
        from hyv_pack.hunyuan_i2v.wavespeed.journal import JobJournal
        from hyv_pack.hunyuan_i2v.wavespeed.runner import run_batch
        from wavespeed_server import FAST_TIMING
        base, state, out = sys.argv[1:4]
        job = I2VJob("crash test", dict(seed=77), image_url="https://example.invalid/start.png")
        run_batch([job], api_key=os.environ["WAVESPEED_API_KEY"], output_dir=out, journal=JobJournal(state),
                  settings=ws.ClientSettings(base_url=base, **FAST_TIMING), timeout_s=120)
    """))
    state, out = tmp_path / "state", tmp_path / "out"
    env = {**os.environ, "WAVESPEED_API_KEY": server.api_key}
    process = subprocess.Popen([sys.executable, str(script), server.base_url, str(state), str(out)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        server.wait_until(lambda s: s.polls >= 3 or process.poll() is not None, timeout=45)
        assert process.poll() is None, process.stdout.read().decode(errors="replace")
        assert server.polls >= 3, "the first run never started polling"
    finally:
        process.kill()
        process.wait(timeout=30)
    entry = JobJournal(state).get(job.key)
    assert entry["state"] == PENDING and server.submits_received == 1

    server.release_all()
    [result] = run(server, tmp_path, [job])
    assert result.source == "resumed task" and result.task_id == entry["task_id"]
    assert server.submits_received == 1 and server.tasks_created == 1


def test_fixed_seed_rerun_reuses_the_saved_file_without_network(server, tmp_path):
    job = image_job(seed=5)
    [first] = run(server, tmp_path, [job])
    requests_before = len(server.requests)
    [again] = run(server, tmp_path, [job])
    assert again.source == "saved file" and again.task_id == first.task_id
    assert len(server.requests) == requests_before
    assert again.frames.shape == first.frames.shape

    first.path.unlink()  # the user cleaned the output folder: download again, do not pay again
    [third] = run(server, tmp_path, [job])
    assert third.task_id == first.task_id and third.path.is_file() and server.submits_received == 1


def test_random_seed_makes_a_new_video_every_run(server, tmp_path):
    job = image_job(seed=-1)
    [first] = run(server, tmp_path, [job])
    [second] = run(server, tmp_path, [job])
    assert first.task_id != second.task_id and server.submits_received == 2
    assert first.path.is_file() and second.path.is_file()


def release_when(server, condition):
    """An on_update callback that lets held tasks finish once ``condition(statuses)`` holds."""
    def on_update(statuses):
        if condition(statuses):
            server.release_all()
    return on_update


def test_batch_results_keep_input_order_under_concurrency(server, tmp_path):
    colors = [(220, 20, 20), (20, 220, 20), (20, 20, 220)]
    # The first video is held until the others are done, so completion order differs from input order.
    server.outcomes_by_prompt = {"first": Outcome("hold")}
    jobs = [image_job(c, seed=1, prompt=p) for c, p in zip(colors, ["first", "second", "third"])]
    results = run(server, tmp_path, jobs, concurrency=2,
                  on_update=release_when(server, lambda st: all(s.phase == "done" for s in st[1:])))
    assert [r.index for r in results] == [0, 1, 2]
    for result, color in zip(results, colors):
        channel = max(range(3), key=lambda i: color[i])
        assert result.frames[..., channel].mean() > 0.6
    assert server.max_running == 2  # two at once, never three
    assert server.tasks_created == 3
    first = server.tasks[results[0].task_id]
    assert first.done_at > max(server.tasks[r.task_id].done_seen_at for r in results[1:])


def test_identical_images_in_a_batch_are_separate_videos(server, tmp_path):
    results = run(server, tmp_path, [image_job(seed=-1), image_job(seed=-1)], concurrency=2)
    assert len({r.task_id for r in results}) == 2 and server.submits_received == 2


def test_failure_in_a_batch_keeps_paid_results_and_skips_unstarted_jobs(server, tmp_path):
    # The slow job is held until the failure is known (a job's "failed" status is
    # published only after the batch marked it), so no worker can take job 3 before.
    server.outcomes_by_prompt = {"blocked": Outcome("failed", code=1200, message="flagged"),
                                 "slow": Outcome("hold")}
    jobs = [image_job((200, 0, 0), seed=3, prompt="blocked"), image_job((0, 200, 0), seed=3, prompt="slow"),
            image_job((0, 0, 200), seed=3, prompt="slow"), image_job((90, 90, 90), seed=3, prompt="slow")]
    seen = []
    with pytest.raises(WaveSpeedBatchError, match="Video 1: .*content moderation") as caught:
        run(server, tmp_path, jobs, concurrency=2,
            on_update=release_when(server, lambda st: seen.append([s.phase for s in st]) or st[0].phase == "failed"))
    assert server.tasks_created == 2  # jobs 3 and 4 never started
    assert "not started" in str(caught.value)
    assert any(phases[0] == "failed" for phases in seen)
    entries = JobJournal(tmp_path / "state").entries()
    assert [e["state"] for e in entries.values()] == [COMPLETED]
    assert Path(next(iter(entries.values()))["local_file"]).name in str(caught.value)


def test_damaged_journal_is_kept_aside_and_replaced(tmp_path):
    journal = JobJournal(tmp_path)
    journal.path.write_text("{ not json")
    assert journal.get("anything") is None
    journal.record_pending("k", "task", {"prompt": "p"}, False)
    assert json.loads(journal.path.read_text())["entries"]["k"]["task_id"] == "task"
    assert list(tmp_path.glob("wavespeed_jobs.json.damaged-*"))


def test_journal_drops_tasks_older_than_wavespeeds_retention(tmp_path):
    now = [1_000_000.0]
    journal = JobJournal(tmp_path, clock=lambda: now[0])
    journal.record_pending("old", "t-old", {}, False)
    now[0] += 8 * 24 * 3600
    assert journal.resumable("old", random_seed=False) is None
    journal.record_pending("new", "t-new", {}, False)
    assert set(journal.entries()) == {"new"}
