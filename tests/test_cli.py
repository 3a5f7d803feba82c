"""The command line runs the same path and writes an MP4."""

import os
import subprocess
import sys

from conftest import ROOT

from hyv_pack.hunyuan_i2v.shared.video import read_mp4


def run_cli(*args, cwd=ROOT, command="generate", env=None, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hunyuan_i2v", command, *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )


def test_demo_writes_a_playable_mp4(tmp_path):
    out = tmp_path / "demo.mp4"
    result = run_cli("--demo", "--demo-family", "hunyuan_video_13b", "--output", str(out))
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


def test_comfyui_single_files_with_a_lora(comfy_models, tmp_path):
    """A ComfyUI user's files only: single-file transformer, VAE and text encoders, plus a LoRA."""
    from safetensors.torch import save_file

    import torch

    (comfy_models / "loras").mkdir(exist_ok=True)
    lora = {"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": torch.randn(2, 20),
            "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight": torch.randn(60, 2)}
    save_file(lora, str(comfy_models / "loras" / "cli_lora.safetensors"))
    tokenizers = comfy_models / "diffusers" / "tiny_v2"
    from conftest import test_image

    test_image(32, 48, channels=1)[1].save(tmp_path / "gray.png")
    out = tmp_path / "v2.mp4"
    result = run_cli(
        "--models", str(comfy_models), "--transformer", "tiny_v2.safetensors", "--vae", "tiny_vae.safetensors",
        "--mllm", "tiny_llava_llama3.safetensors", "--vision", "tiny_llava_llama3_vision.safetensors",
        "--clip", "tiny_clip_l.safetensors", "--tokenizers", str(tokenizers), "--lora", "cli_lora.safetensors:0.5",
        "--image", str(tmp_path / "gray.png"),
        "--width", "48", "--height", "32", "--frames", "5", "--steps", "2", "--dtype", "fp32", "--output", str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "LoRA cli_lora.safetensors at 0.5" in result.stderr
    frames, _ = read_mp4(out)
    assert frames.shape == (5, 32, 48, 3)


def test_bad_input_exits_with_a_sentence(tmp_path):
    result = run_cli("--demo", "--demo-family", "hunyuan_video_13b", "--frames", "10", "--output", str(tmp_path / "x.mp4"))
    assert result.returncode == 2
    assert "frames must be 4n+1" in result.stderr and "Traceback" not in result.stderr


def test_demo_of_hunyuan_video_15(tmp_path):
    out = tmp_path / "demo15.mp4"
    result = run_cli("--demo", "--output", str(out))  # 1.5 is the default demo family
    assert result.returncode == 0, result.stderr
    assert "HunyuanVideo-1.5" in result.stderr and "video will be noise" in result.stderr
    frames, _ = read_mp4(out)
    assert frames.shape == (17, 64, 64, 3)


def test_hunyuan_video_15_comfyui_single_files(comfy_models15, tmp_path):
    """1.5 from ComfyUI's files only (fused-qkv transformer, original VAE, Qwen/SigLIP/ByT5), tokenizers from the
    diffusers folder of the same model in the models folder."""
    from conftest import test_image

    test_image(48, 64)[1].save(tmp_path / "start.png")
    out = tmp_path / "v15.mp4"
    result = run_cli(
        "--models", str(comfy_models15), "--transformer", "tiny15_comfy.safetensors", "--vae",
        "tiny15_vae.safetensors", "--mllm", "tiny_qwen25.safetensors", "--vision", "tiny_siglip.safetensors",
        "--clip", "tiny_byt5.safetensors", "--image", str(tmp_path / "start.png"), "--width", "64", "--height",
        "48", "--frames", "5", "--steps", "2", "--dtype", "fp32", "--prompt", 'a sign says "HI"', "--output", str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "HunyuanVideo-1.5 I2V from 'tiny15_comfy.safetensors'" in result.stderr
    frames, _ = read_mp4(out)
    assert frames.shape == (5, 48, 64, 3)
