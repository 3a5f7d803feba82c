"""Every fault the service can show ends in success after retry or in a clear
error within the deadline, and no submit is ever sent twice."""

from __future__ import annotations

import socket
import time
from email.utils import formatdate

import pytest

from hyv_pack.hunyuan_i2v.wavespeed import client as ws
from hyv_pack.hunyuan_i2v.wavespeed import transport
from hyv_pack.hunyuan_i2v.wavespeed.answers import PREDICTIONS_PAGE
from hyv_pack.hunyuan_i2v.wavespeed.endpoints import HUNYUAN_VIDEO_15
from hyv_pack.hunyuan_i2v.wavespeed.errors import (
    WaveSpeedAccountError, WaveSpeedAuthError, WaveSpeedDownloadError, WaveSpeedRequestError, WaveSpeedSubmitUncertain,
    WaveSpeedTaskFailed, WaveSpeedTimeout, WaveSpeedUnavailable,
)
from hyv_pack.hunyuan_i2v.wavespeed.jobs import I2VJob
from hyv_pack.hunyuan_i2v.wavespeed.journal import DOWNLOADING, PENDING, JobJournal
from hyv_pack.hunyuan_i2v.wavespeed.keys import API_KEY_ENV
from hyv_pack.hunyuan_i2v.wavespeed.runner import run_batch
from test_wavespeed_client import image_job, settings_for
from wavespeed_server import FAST_TIMING, Fault, Outcome, StandInWaveSpeed

URL_JOB = I2VJob("a lighthouse at dusk", {"seed": 11}, image_url="https://example.invalid/lighthouse.png")


@pytest.fixture
def server():
    with StandInWaveSpeed(processing_s=0.05) as stand_in:
        yield stand_in


def run(server, tmp_path, job=URL_JOB, timeout_s=10.0, **overrides):
    started = time.monotonic()
    try:
        return run_batch([job], api_key=server.api_key, output_dir=tmp_path / "out", timeout_s=timeout_s,
                         journal=JobJournal(tmp_path / "state"), settings=settings_for(server, **overrides))[0]
    finally:
        # Generous bound for a loaded machine; it catches unbounded loops, not slowness.
        assert time.monotonic() - started < timeout_s + 10


def journal_entry(tmp_path, job=URL_JOB):
    return JobJournal(tmp_path / "state").get(job.key)


# ---------------------------------------------------------------- submit: clear errors, never repeated

def test_400_carries_wavespeeds_message(server, tmp_path):
    server.inject("submit", Fault(status=400, message="prompt too long", code=1401))
    with pytest.raises(WaveSpeedRequestError, match="HTTP 400, code 1401: prompt too long"):
        run(server, tmp_path)
    assert server.submits_received == 1 and server.tasks_created == 0


def test_401_says_how_to_set_the_key(server, tmp_path):
    with pytest.raises(WaveSpeedAuthError, match=API_KEY_ENV):
        run_batch([URL_JOB], api_key="wrong-key", output_dir=tmp_path, journal=JobJournal(tmp_path),
                  settings=settings_for(server))
    assert server.tasks_created == 0


@pytest.mark.parametrize("status, words", [(402, "Add credit"), (403, "account is active")])
def test_account_problems(server, tmp_path, status, words):
    server.inject("submit", Fault(status=status, message="insufficient balance"))
    with pytest.raises(WaveSpeedAccountError, match=words) as caught:
        run(server, tmp_path)
    assert "insufficient balance" in str(caught.value) and server.submits_received == 1
    if status == 403:
        assert "wavespeed-ai/hunyuan-video/i2v" in str(caught.value)


def test_429_on_submit_waits_for_retry_after_then_submits_once(server, tmp_path):
    server.inject("submit", Fault(status=429, message="rate limited", retry_after="1"))
    result = run(server, tmp_path)
    assert server.submits_received == 2 and server.tasks_created == 1
    assert list(server.tasks) == [result.task_id]
    first, second = server.submit_arrivals
    assert second - first >= 0.9  # a lower bound set by the client's own wait: cannot flake


def test_429_until_out_of_patience_is_a_rate_limit_error(server, tmp_path):
    server.inject("submit", *[Fault(status=429, retry_after="0") for _ in range(4)])
    with pytest.raises(WaveSpeedUnavailable, match="rate limit"):
        run(server, tmp_path)
    assert server.tasks_created == 0 and server.submits_received == 4


def test_429_whose_retry_after_passes_the_deadline_is_not_waited_for(server, tmp_path):
    server.inject("submit", Fault(status=429, retry_after="60"))
    with pytest.raises(WaveSpeedUnavailable, match="rate limit"):
        run(server, tmp_path, timeout_s=1.0, retry_after_max_s=60.0)
    assert server.submits_received == 1


@pytest.mark.parametrize("fault", [Fault(status=500), Fault(status=502), Fault(status=503, retry_after="0")])
def test_5xx_on_submit_is_not_retried(server, tmp_path, fault):
    server.inject("submit", fault, fault, fault)
    with pytest.raises(WaveSpeedSubmitUncertain, match="not charged twice") as caught:
        run(server, tmp_path)
    assert PREDICTIONS_PAGE in str(caught.value)
    assert server.submits_received == 1


@pytest.mark.parametrize("fault", [Fault(reset=True), Fault(stall=True), Fault(malformed=True)],
                         ids=["reset", "slower-than-read-timeout", "malformed-json"])
def test_lost_submit_answer_is_reported_not_repeated(server, tmp_path, fault):
    server.inject("submit", fault)
    with pytest.raises(WaveSpeedSubmitUncertain, match="may have created") as caught:
        run(server, tmp_path)
    assert "look for a task" in str(caught.value).lower()
    assert server.submits_received == 1 and server.tasks_created == 1


def test_invalid_fields_are_refused_by_the_server_schema(server, tmp_path, monkeypatch):
    # The stand-in refuses fields an endpoint does not take: prove the client sends none.
    job = image_job(endpoint=HUNYUAN_VIDEO_15, seed=3)
    monkeypatch.setattr(I2VJob, "payload", lambda self, image: {"image": image, "size": "1280*720"})
    with pytest.raises(WaveSpeedRequestError, match="unknown field"):
        run(server, tmp_path, job=job)
    assert server.tasks_created == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_refused_connection_sent_nothing(tmp_path):
    settings = ws.ClientSettings(base_url=f"http://127.0.0.1:{_free_port()}", **FAST_TIMING)
    with pytest.raises(WaveSpeedUnavailable, match="Nothing was sent"):
        run_batch([URL_JOB], api_key="refused-port-key", output_dir=tmp_path, journal=JobJournal(tmp_path),
                  settings=settings)


def test_refused_connection_is_retried_until_the_server_is_up(tmp_path, monkeypatch):
    port = _free_port()
    late: list[StandInWaveSpeed] = []
    real_sleep = transport.Stop.sleep

    def start_during_the_first_backoff(stop, seconds):
        # Ordered, not timed: the server binds its port after a refused attempt and before the next one.
        if not late:
            late.append(StandInWaveSpeed(api_key="late-key", port=port).start())
        real_sleep(stop, seconds)

    monkeypatch.setattr(transport.Stop, "sleep", start_during_the_first_backoff)
    try:
        settings = ws.ClientSettings(base_url=f"http://127.0.0.1:{port}", **FAST_TIMING)
        [result] = run_batch([URL_JOB], api_key="late-key", output_dir=tmp_path, journal=JobJournal(tmp_path),
                             settings=settings)
        assert late and late[0].submits_received == 1 and result.task_id in late[0].tasks
    finally:
        for server in late:
            server.stop()


# ---------------------------------------------------------------- uploads: retried, key kept back

@pytest.mark.parametrize("endpoint, faults", [
    ("ticket", [Fault(status=503), Fault(reset=True), Fault(status=429, retry_after="0")]),
    ("put", [Fault(status=503), Fault(reset=True), Fault(stall=True)]),
], ids=["ticket", "signed-put"])
def test_upload_faults_are_retried(server, tmp_path, endpoint, faults):
    server.inject(endpoint, *faults)
    result = run(server, tmp_path, job=image_job(seed=2))
    assert server.uploads == 1 and server.submits_received == 1 and result.frames.shape[0] == 9


def test_binary_route_faults_are_retried(server, tmp_path):
    server.ticket_route = False
    server.inject("binary", Fault(status=503), Fault(reset=True))
    result = run(server, tmp_path, job=image_job(seed=2))
    assert server.binary_uploads == 3 and server.uploads == 1 and result.frames.shape[0] == 9


def test_signed_put_refused_is_a_clear_error_and_nothing_is_submitted(server, tmp_path):
    server.inject("put", Fault(status=403, message="request has expired"))
    with pytest.raises(WaveSpeedUnavailable, match="storage refused the image .*HTTP 403.*Nothing was submitted"):
        run(server, tmp_path, job=image_job(seed=2))
    assert server.submits_received == 0


def test_upload_ticket_problems(server, tmp_path):
    server.inject("ticket", Fault(malformed=True))
    with pytest.raises(WaveSpeedUnavailable, match="unusable"):
        run(server, tmp_path, job=image_job(seed=2))
    server.inject("ticket", Fault(status=401))
    with pytest.raises(WaveSpeedAuthError, match=API_KEY_ENV):
        run(server, tmp_path, job=image_job(seed=2))
    assert server.submits_received == 0


# ---------------------------------------------------------------- polls and downloads: retried

@pytest.mark.parametrize("faults", [
    [Fault(status=429, retry_after="0")] * 5,
    [Fault(status=500), Fault(status=502), Fault(status=503), Fault(status=503), Fault(status=500)],
    [Fault(reset=True), Fault(reset=True)],
    [Fault(stall=True)],
    [Fault(malformed=True), Fault(malformed=True)],
], ids=["429-burst", "5xx-burst", "resets", "slower-than-read-timeout", "malformed"])
def test_poll_faults_are_retried_to_success(server, tmp_path, faults):
    server.inject("result", *faults)
    result = run(server, tmp_path)
    assert result.frames.shape[0] == 9
    assert server.submits_received == 1 and server.polls > len(faults)


@pytest.mark.parametrize("retry_after", ["1", formatdate(time.time() + 2, usegmt=True)], ids=["seconds", "http-date"])
def test_poll_honours_retry_after(server, tmp_path, retry_after):
    if "GMT" in retry_after:  # made when the module loaded: renew it
        retry_after = formatdate(time.time() + 2, usegmt=True)
    server.inject("result", Fault(status=429, retry_after=retry_after))
    started = time.monotonic()
    run(server, tmp_path)
    assert time.monotonic() - started >= 0.9  # a lower bound: the client waited as told


@pytest.mark.parametrize("faults", [
    [Fault(status=503), Fault(status=502), Fault(status=500)],
    [Fault(truncate=True)],
    [Fault(reset=True)],
], ids=["5xx", "truncated-transfer", "reset"])
def test_download_faults_are_retried_to_success(server, tmp_path, faults):
    server.inject("download", *faults)
    result = run(server, tmp_path)
    assert result.frames.shape == (9, 48, 64, 3) and result.path.is_file()
    assert not list(result.path.parent.glob("*.part"))
    assert server.downloads == len(faults) + 1


# ---------------------------------------------------------------- task outcomes

def test_moderation_failure_is_explained(server, tmp_path):
    server.outcomes.append(Outcome("failed", code=1200, message="content flagged"))
    with pytest.raises(WaveSpeedTaskFailed, match="content moderation") as caught:
        run(server, tmp_path)
    assert caught.value.code == 1200 and "content flagged" in str(caught.value)
    assert journal_entry(tmp_path) is None  # a failed task never delivers: the next run starts afresh


def test_failed_task_carries_code_and_message(server, tmp_path):
    server.outcomes.append(Outcome("failed", code=1403, message="worker crashed"))
    with pytest.raises(WaveSpeedTaskFailed, match="code 1403: worker crashed") as caught:
        run(server, tmp_path)
    assert caught.value.code == 1403 and caught.value.task_id in server.tasks


def test_stuck_task_times_out_within_the_deadline_and_stays_journaled(server, tmp_path):
    server.outcomes.append(Outcome("stuck"))
    with pytest.raises(WaveSpeedTimeout, match="run the same inputs again") as caught:
        run(server, tmp_path, timeout_s=0.5)
    entry = journal_entry(tmp_path)
    assert entry["state"] == PENDING and entry["task_id"] == caught.value.task_id


def test_output_url_404_is_a_clear_error_and_the_url_is_kept(server, tmp_path):
    server.inject("download", Fault(status=404))
    with pytest.raises(WaveSpeedDownloadError, match="HTTP 404") as caught:
        run(server, tmp_path)
    entry = journal_entry(tmp_path)
    assert entry["state"] == DOWNLOADING and entry["video_url"] in str(caught.value)
    # The next run downloads the paid video without a new task.
    result = run(server, tmp_path)
    assert result.task_id == entry["task_id"] and server.submits_received == 1


def test_damaged_mp4_is_retried_then_reported(server, tmp_path):
    server.damaged_outputs = True
    with pytest.raises(WaveSpeedDownloadError, match="could not be fetched") as caught:
        run(server, tmp_path)
    assert "run the same inputs again" in str(caught.value)
    assert server.downloads == FAST_TIMING["download_attempts"] and server.submits_received == 1


def test_nsfw_flag_is_reported(server, tmp_path, caplog):
    server.outcomes.append(Outcome(nsfw=True))
    notes = []
    result = run_batch([URL_JOB], api_key=server.api_key, output_dir=tmp_path, journal=JobJournal(tmp_path),
                       settings=settings_for(server), on_update=lambda st: notes.extend(s.note for s in st))[0]
    assert result.nsfw
    assert any("NSFW" in note for note in notes)
    assert "NSFW" in caplog.text


def test_unknown_task_on_resume_is_dropped(server, tmp_path):
    JobJournal(tmp_path / "state").record_pending(URL_JOB.key, "gone-task", URL_JOB.journal_inputs(), False)
    with pytest.raises(WaveSpeedTaskFailed, match="does not know task gone-task"):
        run(server, tmp_path)
    assert journal_entry(tmp_path) is None and server.submits_received == 0


def test_faults_on_the_15_endpoint_are_handled_the_same(server, tmp_path):
    job = image_job(endpoint=HUNYUAN_VIDEO_15, seed=4)
    server.inject("submit", Fault(status=429, retry_after="0"))
    server.inject("result", Fault(status=503), Fault(stall=True))
    server.inject("download", Fault(truncate=True))
    result = run(server, tmp_path, job=job)
    assert server.submits_received == 2 and server.tasks_created == 1 and result.frames.shape[0] == 9
    server.inject("submit", Fault(reset=True))
    with pytest.raises(WaveSpeedSubmitUncertain):
        run(server, tmp_path, job=image_job(endpoint=HUNYUAN_VIDEO_15, seed=5))
    assert server.submits_received == 3


def test_unusable_base_url_sent_nothing(tmp_path):
    settings = ws.ClientSettings(**{**FAST_TIMING, "base_url": "htp//wrong"})
    with pytest.raises(WaveSpeedUnavailable, match="Nothing was sent.*WAVESPEED_BASE_URL"):
        run_batch([URL_JOB], api_key="any-key", output_dir=tmp_path, journal=JobJournal(tmp_path), settings=settings)
