"""The command line runs the same path and writes an MP4."""

import os
import subprocess
import sys

from conftest import ROOT

from hyv_pack.hunyuan_i2v.mp4 import read_mp4


def run_cli(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "hunyuan_i2v", "generate", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )


def test_demo_writes_a_playable_mp4(tmp_path):
    out = tmp_path / "demo.mp4"
    result = run_cli("--demo", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "video will be noise" in result.stderr
    frames, fps = read_mp4(out)
    assert frames.shape == (17, 64, 64, 3) and fps == 24.0


def test_models_folder_run_with_single_files(comfy_models, tmp_path):
    from conftest import test_image

    _, pil = test_image(40, 56, channels=4)
    pil.save(tmp_path / "start.png")
    out = tmp_path / "v1.mp4"
    result = run_cli(
        "--models", str(comfy_models), "--diffusers", "tiny_v1", "--transformer", "tiny_v1.safetensors",
        "--vae", "tiny_vae.safetensors", "--image", str(tmp_path / "start.png"), "--width", "48", "--height", "32",
        "--frames", "9", "--steps", "2", "--dtype", "fp32", "--output", str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "v1 (latent concat)" in result.stderr
    frames, _ = read_mp4(out)
    assert frames.shape == (5, 32, 48, 3)  # v1 drops its first 4 decoded frames


def test_bad_input_exits_with_a_sentence(comfy_models, tmp_path):
    result = run_cli(
        "--models", str(comfy_models), "--diffusers", "tiny_v2", "--demo", "--frames", "10", "--output",
        str(tmp_path / "x.mp4"),
    )
    assert result.returncode == 2
    assert "frames must be 4n+1" in result.stderr and "Traceback" not in result.stderr
