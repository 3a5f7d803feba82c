"""Cancel stops a WaveSpeed run at once at every phase, and never loses a paid task.

Each phase is reached by holding the stand-in server's answer (or by a long
Retry-After or poll interval), so the order of events is fixed, not timed. The
client runs with the real service's read timeouts (30 s and more): a run that
waited for a held answer or a timeout would take that long, far past the bound
checked here, which only separates "at once" from "after a timeout".
"""

from __future__ import annotations

import threading
import time

import pytest

from hyv_pack.hunyuan_i2v.wavespeed.endpoints import HUNYUAN_VIDEO_15
from hyv_pack.hunyuan_i2v.wavespeed.errors import WaveSpeedInterrupted
from hyv_pack.hunyuan_i2v.wavespeed.journal import DOWNLOADING, PENDING, JobJournal
from hyv_pack.hunyuan_i2v.wavespeed.runner import run_batch
from test_wavespeed_client import image_job, settings_for
from wavespeed_server import Fault, Outcome, StandInWaveSpeed

PATIENT = dict(read_timeout_s=30.0, submit_read_timeout_s=30.0, retry_after_max_s=60.0, backoff_s=5.0,
               backoff_max_s=60.0)
AT_ONCE_S = 5.0  # far below every wait above; generous for a loaded machine


@pytest.fixture
def server():
    with StandInWaveSpeed(processing_s=0.05) as stand_in:
        yield stand_in


class Cancel:
    """The ``interrupted`` callable: True once ``when()`` holds; remembers when that was first seen."""

    def __init__(self, when):
        self.when, self.at = when, None

    def __call__(self) -> bool:
        if self.at is None and self.when():
            self.at = time.monotonic()
        return self.at is not None


def cancelled_run(server, tmp_path, jobs, when, concurrency=2, **timing):
    cancel = Cancel(when)
    with pytest.raises(WaveSpeedInterrupted):
        run_batch(jobs, api_key=server.api_key, output_dir=tmp_path / "out", journal=JobJournal(tmp_path / "state"),
                  settings=settings_for(server, **{**PATIENT, **timing}), concurrency=concurrency,
                  interrupted=cancel, timeout_s=600)
    latency = time.monotonic() - cancel.at
    assert latency < AT_ONCE_S, f"the run took {latency:.1f} s to stop"
    return latency


def eventually(condition, limit_s=30.0) -> bool:
    """Wait for a condition no request marks (a journal write in the background)."""
    end = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def rerun(server, tmp_path, jobs, **kwargs):
    return run_batch(jobs, api_key=server.api_key, output_dir=tmp_path / "out", journal=JobJournal(tmp_path / "state"),
                     settings=settings_for(server), **kwargs)


@pytest.mark.parametrize("endpoint", ["ticket", "put", "binary"])
def test_cancel_during_an_upload(server, tmp_path, endpoint):
    server.ticket_route = endpoint != "binary"
    gate = server.hold(endpoint)
    cancelled_run(server, tmp_path, [image_job(seed=1)], lambda: gate.arrived >= 1)
    assert server.submits_received == 0  # nothing was paid
    gate.release()


def test_cancel_while_a_submit_is_answered_keeps_the_task(server, tmp_path):
    gate = server.hold("submit")
    job = image_job(seed=2)
    cancelled_run(server, tmp_path, [job], lambda: gate.arrived >= 1)
    assert server.tasks_created == 1 and JobJournal(tmp_path / "state").get(job.key) is None
    gate.release()  # the answer arrives after the run stopped ...
    assert eventually(lambda: JobJournal(tmp_path / "state").get(job.key) is not None)
    # ... and is journaled all the same, so the rerun resumes the paid task.
    [result] = rerun(server, tmp_path, [job])
    assert result.source == "resumed task" and server.submits_received == 1


def test_rerun_waits_for_a_cancelled_submit_instead_of_paying_again(server, tmp_path):
    gate = server.hold("submit")
    job = image_job(seed=3, endpoint=HUNYUAN_VIDEO_15)
    cancelled_run(server, tmp_path, [job], lambda: gate.arrived >= 1)
    waiting, outcome = threading.Event(), {}

    def second_run():
        try:
            outcome["results"] = rerun(server, tmp_path, [job], on_update=lambda st: (
                waiting.set() if st[0].phase == "waiting" else None))
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    thread = threading.Thread(target=second_run)
    thread.start()
    assert waiting.wait(30), "the rerun did not wait for the cancelled submit"
    assert server.submits_received == 1
    gate.release()
    thread.join(60)
    [result] = outcome["results"]
    assert result.source == "resumed task" and server.submits_received == 1 and server.tasks_created == 1


def test_cancel_while_a_rate_limited_submit_waits(server, tmp_path):
    server.inject("submit", Fault(status=429, retry_after="60"))
    cancelled_run(server, tmp_path, [image_job(seed=4)], lambda: server.submits_received >= 1)
    assert server.tasks_created == 0


@pytest.mark.parametrize("phase", ["poll answer", "poll backoff", "poll interval"])
def test_cancel_while_polling_keeps_the_task(server, tmp_path, phase):
    server.outcomes.append(Outcome("hold"))
    job = image_job(seed=5)
    gate = None
    timing = {}
    if phase == "poll answer":
        gate = server.hold("result")
    elif phase == "poll backoff":
        server.inject("result", Fault(status=429, retry_after="60"))
    else:
        timing = dict(poll_start_s=60.0, poll_max_s=60.0)
    cancelled_run(server, tmp_path, [job], lambda: server.polls >= 1 and (gate is None or gate.arrived >= 1),
                  **timing)
    assert server.polls == 1
    assert JobJournal(tmp_path / "state").get(job.key)["state"] == PENDING
    server.release_all()
    [result] = rerun(server, tmp_path, [job])
    assert result.source == "resumed task" and server.submits_received == 1


def test_cancel_mid_download_keeps_the_video_url(server, tmp_path):
    gate = server.hold("download")
    job = image_job(seed=6)
    cancelled_run(server, tmp_path, [job], lambda: gate.arrived >= 1)
    entry = JobJournal(tmp_path / "state").get(job.key)
    assert entry["state"] == DOWNLOADING
    assert not list((tmp_path / "out").rglob("*.mp4"))  # no half file left as a video
    gate.release()
    [result] = rerun(server, tmp_path, [job])
    assert result.task_id == entry["task_id"] and server.submits_received == 1 and result.path.is_file()
    # The left request may still be writing its part file; the saved video is whole all the same.
    assert result.frames.shape == (9, 48, 64, 3)


def test_cancel_a_batch_leaves_queued_jobs_unstarted_and_running_ones_resumable(server, tmp_path):
    server.outcomes_by_prompt = {"held": Outcome("hold")}
    gate = server.hold("result")
    jobs = [image_job((40 * i, 0, 0), seed=7, prompt="held", endpoint=HUNYUAN_VIDEO_15) for i in range(4)]
    cancelled_run(server, tmp_path, jobs, lambda: gate.arrived >= 2, concurrency=2)
    assert server.submits_received == 2  # the two queued jobs never started
    assert [e["state"] for e in JobJournal(tmp_path / "state").entries().values()] == [PENDING, PENDING]
    server.outcomes_by_prompt.clear()  # the two new tasks complete on their own
    server.release_all()
    results = rerun(server, tmp_path, jobs, concurrency=4)
    assert [r.source for r in results].count("resumed task") == 2 and server.submits_received == 4
