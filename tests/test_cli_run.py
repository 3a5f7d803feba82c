"""What a run of the command line shows and leaves behind: progress, notes, temporary files, the MP4 itself."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, test_image
from test_cli import run_cli

from hyv_pack.hunyuan_i2v.shared import video


def leftovers(folder):
    """What a run left in the system temp folder; torch's per-user cache folder is shared by every run, not ours."""
    return [p.name for p in folder.iterdir() if not p.name.startswith("torchinductor_")]


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def two_demo_runs(tmp_path_factory):
    """The 1.5 demo run twice, each with its own system temp folder."""
    runs = []
    for index in range(2):
        folder = tmp_path_factory.mktemp(f"demo_run{index}")
        (folder / "tmp").mkdir()
        result = run_cli("--demo", "--output", str(folder / "demo.mp4"), env={"TMPDIR": str(folder / "tmp")})
        assert result.returncode == 0, result.stderr
        runs.append((folder, result))
    return runs


def test_each_stage_has_a_progress_bar_and_sampling_its_rate(two_demo_runs):
    stderr = two_demo_runs[0][1].stderr
    for stage in ("Loading models", "Encoding", "Sampling", "Decoding", "Writing MP4"):
        assert stage in stderr, stage
    assert "4/4" in stderr and ("step/s" in stderr or "s/step" in stderr)
    assert "Traceback" not in stderr


def test_no_torchvision_notice(two_demo_runs):
    stderr = two_demo_runs[0][1].stderr
    assert "torchvision" not in stderr, stderr


def test_temporary_folders_are_removed_after_a_run(two_demo_runs):
    for folder, _ in two_demo_runs:
        assert leftovers(folder / "tmp") == []
        assert [p.name for p in folder.iterdir() if p.name != "tmp"] == ["demo.mp4"]  # no partial file left


def test_same_seed_gives_the_same_file(two_demo_runs):
    first, second = (folder / "demo.mp4" for folder, _ in two_demo_runs)
    assert digest(first) == digest(second)


def test_mp4_writer_is_deterministic(tmp_path):
    frames = torch.rand(9, 48, 80, 3, generator=torch.Generator().manual_seed(0))
    video.write_mp4(frames, tmp_path / "a.mp4")
    video.write_mp4(frames, tmp_path / "b.mp4")
    # A fresh process with another thread setting in its environment writes the same bytes too.
    script = (f"import sys, torch; sys.path.insert(0, {str(ROOT)!r}); from hunyuan_i2v.shared import video; "
              f"frames = torch.rand(9, 48, 80, 3, generator=torch.Generator().manual_seed(0)); "
              f"video.write_mp4(frames, {str(tmp_path / 'c.mp4')!r})")
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert digest(tmp_path / "a.mp4") == digest(tmp_path / "b.mp4") == digest(tmp_path / "c.mp4")


def test_interrupted_run_removes_its_temporary_folder(tmp_path):
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path / "tmp")}
    process = subprocess.Popen(
        [sys.executable, "-m", "hunyuan_i2v", "generate", "--demo", "--demo-family", "hunyuan_video_13b", "--steps",
         "200", "--output", str(tmp_path / "never.mp4")], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )
    seen = ""
    deadline = time.monotonic() + 240
    while "Sampling" not in seen and time.monotonic() < deadline:
        seen += process.stderr.read(1)
    process.send_signal(signal.SIGINT)
    stderr = seen + process.stderr.read()
    assert process.wait(timeout=120) == 130, stderr
    assert "Interrupted" in stderr and "Traceback" not in stderr
    assert leftovers(tmp_path / "tmp") == []
    assert not (tmp_path / "never.mp4").exists()


def test_demo_honours_the_options_given(tmp_path):
    out = tmp_path / "small.mp4"
    result = run_cli("--demo", "--demo-family", "hunyuan_video_13b", "--frames", "5", "--width", "48", "--height", "32",
                     "--steps", "2", "--seed", "7", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "48x32, 5 frames, seed 7: steps 2," in result.stderr
    frames, _ = video.read_mp4(out)
    assert frames.shape == (5, 32, 48, 3)


def test_small_start_image_is_warned_about(tmp_path):
    test_image(8, 8)[1].save(tmp_path / "tiny.png")
    result = run_cli("--demo", "--demo-family", "hunyuan_video_13b", "--frames", "1", "--steps", "1", "--image",
                     str(tmp_path / "tiny.png"), "--output", str(tmp_path / "out.mp4"))
    assert result.returncode == 0, result.stderr
    assert "the start image is 8x8 and the video 64x64" in result.stderr and "blurred" in result.stderr


def test_video_is_rescued_when_the_output_cannot_be_written(tmp_path, monkeypatch, capsys):
    """The output folder passed the checks, but writing fails at the end (a full disk, a vanished drive)."""
    from hyv_pack.hunyuan_i2v import cli

    real_write = video.write_mp4
    failed = []

    def write_mp4(frames, path, *args, **kwargs):
        if not failed:
            failed.append(path)
            raise OSError(28, "No space left on device")
        return real_write(frames, path, *args, **kwargs)

    monkeypatch.setattr(video, "write_mp4", write_mp4)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    code = cli.main(["generate", "--demo", "--demo-family", "hunyuan_video_13b", "--frames", "5", "--steps", "1",
                     "--quiet", "--output", str(tmp_path / "out" / "video.mp4")])
    stderr = capsys.readouterr().err
    assert code == 1
    assert "Could not write" in stderr and "No space left on device" in stderr
    rescued = list((tmp_path / "home" / "hunyuan_i2v_rescued").glob("video-*.mp4"))
    assert len(rescued) == 1 and str(rescued[0]) in stderr
    assert video.read_mp4(rescued[0])[0].shape[0] == 5
    assert not (tmp_path / "out" / "video.mp4").exists() and not list((tmp_path / "out").glob(".*partial"))


def test_help_shows_every_setting_with_its_default():
    from hyv_pack.hunyuan_i2v.cli import options

    parser = options.build_parser("hunyuan-i2v")
    for command in ("generate", "batch"):
        sub = next(a for a in parser._actions if a.dest == "command").choices[command]
        for action in sub._actions:
            if action.dest in ("help", "jobs", "image", "output"):
                continue
            assert action.help, action.dest
            assert "default" in action.help, (command, action.dest)
    names = {a.dest for a in next(a for a in parser._actions if a.dest == "command").choices["generate"]._actions}
    # the nodes' settings
    assert {"attention", "tiling", "tile_size", "text_encoder_fp8", "text_encoder_device", "vae_dtype", "cache",
            "cache_threshold", "variant", "offload", "fp8", "dtype"} <= names


def test_models_folder_comes_from_the_environment(models_root, tmp_path):
    """HUNYUAN_I2V_MODELS is the default of --models: names resolve inside it."""
    test_image(32, 48)[1].save(tmp_path / "start.png")
    result = run_cli("--diffusers", "tiny_v2", "--image", str(tmp_path / "start.png"), "--width", "48", "--height", "32",
                     "--frames", "1", "--steps", "1", "--dtype", "fp32", "--output", str(tmp_path / "env.mp4"),
                     env={"HUNYUAN_I2V_MODELS": str(models_root)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "env.mp4").exists()
