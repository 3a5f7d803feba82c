"""Every setting the command line can check is checked before anything loads: exit code 2, one sentence, no trace.

Each case runs the real command as a subprocess; the cases are started
together (each is mostly Python start-up) and each test checks its own.
"Loading models" never appearing in the output shows the check came before
any model was loaded.
"""

import os
import struct
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from conftest import test_image
from test_cli import run_cli

from hyv_pack.hunyuan_i2v.shared.sampling import MAX_SEED


def demo(*args, output="{tmp}/out.mp4"):
    return ["--demo", "--output", output, *args]


def single_files(*, vision=True, models=True):
    """The 13 B tiny model as single files: names inside the models folder, or paths outside any."""
    where = (lambda kind, name: name) if models else (lambda kind, name: f"{{models}}/{kind}/{name}")
    args = ["--transformer", where("diffusion_models", "tiny_v2.safetensors"), "--vae",
            where("vae", "tiny_vae.safetensors"), "--mllm", where("text_encoders", "tiny_llava_llama3.safetensors"),
            "--clip", where("text_encoders", "tiny_clip_l.safetensors")]
    if vision:
        args += ["--vision", where("clip_vision", "tiny_llava_llama3_vision.safetensors")]
    return (["--models", "{models}"] if models else []) + args + ["--image", "{tmp}/start.png", "--output",
                                                                  "{tmp}/x.mp4"]


def diffusers_with(*args):
    return ["--models", "{models}", "--diffusers", "tiny_v2", *args, "--image", "{tmp}/start.png", "--output",
            "{tmp}/x.mp4"]


LOCKED = "/sys" if os.geteuid() == 0 else "{tmp}/locked"  # root writes through permission bits, not into /sys

# case: (command-line arguments, fragments the message must hold)
CASES = {
    # the output path
    "output is an existing folder": (demo(output="{tmp}"), ["is a folder", "{tmp}/video.mp4"]),
    "output without extension": (demo(output="{tmp}/clip"), ["has no extension", "clip.mp4"]),
    "output with an image extension": (demo(output="{tmp}/clip.png"), ["ends in '.png'", "writes MP4", "clip.mp4"]),
    "output inside a file": (demo(output="{tmp}/notes.txt/clip.mp4"), ["'{tmp}/notes.txt' is a file, not a folder"]),
    "output folder without write permission": (demo(output=LOCKED + "/clip.mp4"),
                                               ["cannot be written", "does not take new files"]),
    # values
    "fps zero": (demo("--fps", "0"), ["--fps", "fps must be between 1 and 120"]),
    "fps negative": (demo("--fps", "-24"), ["fps must be between 1 and 120"]),
    "unknown device": (demo("--device", "gpu0"), ["--device 'gpu0' is not a device name", "cpu, cuda"]),
    "negative steps": (demo("--steps", "-1"), ["steps must be between 0 and 200 (0 = the model's default)"]),
    "negative seed": (demo("--seed", "-1"), [f"seed must be between 0 and {MAX_SEED}"]),
    "seed above 2**64 - 1": (demo("--seed", str(MAX_SEED + 1)), [f"seed must be between 0 and {MAX_SEED}"]),
    "negative width": (demo("--width", "-64", "--height", "64"), ["width must be between 0 and 4096"]),
    "width above 4096": (demo("--width", "8000", "--height", "8000"), ["width must be between 0 and 4096"]),
    "width off the grid": (demo("--width", "70", "--height", "64"), ["width 70 is not a multiple of 16", "64 or 80"]),
    "width without height": (demo("--width", "64", "--height", "0"), ["both width and height"]),
    "frames not 4n+1": (demo("--frames", "10"), ["frames must be 4n+1", "Use 9 or 13"]),
    "cache threshold zero": (demo("--cache", "first block cache", "--cache-threshold", "0"),
                             ["cache threshold must be between 0.01 and 1"]),
    "resolution the family does not have": (demo("--resolution", "540p"), ["480p and 720p"]),
    "cfg without negative prompt on 13 B": (demo("--demo-family", "hunyuan_video_13b", "--cfg-scale", "4",
                                                 "--negative-prompt", ""), ["needs a negative prompt"]),
    "unreadable start image": (demo("--image", "{tmp}/notes.txt"), ["is not an image file"]),
    "missing start image": (demo("--image", "{tmp}/nope.png"), ["does not exist"]),
    # option combinations
    "demo with model files": (demo("--transformer", "x.safetensors"),
                              ["--demo builds a tiny random model", "--transformer would not be used"]),
    "demo family without demo": (["--demo-family", "hunyuan_video_13b", "--output", "{tmp}/x.mp4"],
                                 ["--demo-family only applies with --demo"]),
    "vision without mllm": (diffusers_with("--vision", "tiny_llava_llama3_vision.safetensors"),
                            ["--vision only applies with --mllm"]),
    "mllm without vision": (single_files(vision=False), ["--mllm needs --vision too"]),
    # model files
    "missing tokenizer": (single_files(models=False), ["No Llama-3 tokenizer found",
                                                       "diffusers folder of the same model"]),
    "model file not found lists the folder": (diffusers_with("--transformer", "tiny_v3.safetensors"),
                                              ["'tiny_v3.safetensors' was found neither as a path nor in",
                                               "tiny_v1.safetensors"]),
    "text file as transformer": (diffusers_with("--transformer", "{tmp}/notes.txt"),
                                 ["is not a valid safetensors file: it is a text file", "HunyuanVideo weights"]),
    "damaged safetensors as transformer": (diffusers_with("--transformer", "{tmp}/cut.safetensors"),
                                           ["Download 'cut.safetensors' again"]),
    "VAE given as transformer": (diffusers_with("--transformer", "{models}/vae/tiny_vae.safetensors"),
                                 ["VAE (vae), but this loader needs the transformer"]),
}
if not torch.cuda.is_available():
    CASES["cuda device without CUDA"] = (demo("--device", "cuda"), ["CUDA is not available", "--device cpu"])


@pytest.fixture(scope="module")
def refusals(models_root, tmp_path_factory):
    """Every case's result, the processes run side by side."""
    tmp = tmp_path_factory.mktemp("refusals")
    test_image(32, 48)[1].save(tmp / "start.png")
    (tmp / "notes.txt").write_text("HunyuanVideo weights: see the model page\n")
    (tmp / "cut.safetensors").write_bytes(struct.pack("<Q", 10_000) + b'{"a": {"dtype": "F32"')  # header ends early
    if LOCKED != "/sys":
        (tmp / "locked").mkdir()
        (tmp / "locked").chmod(0o555)
    fill = {"tmp": str(tmp), "models": str(models_root)}

    def run(case):
        args, fragments = CASES[case]
        # Without a models folder from the environment, so "missing tokenizer" has nowhere to look.
        result = run_cli(*(a.format(**fill) for a in args), env={"HUNYUAN_I2V_MODELS": ""})
        return result, [f.format(**fill) for f in fragments]

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = dict(zip(CASES, pool.map(run, CASES)))
    if LOCKED != "/sys":
        (tmp / "locked").chmod(0o755)
    return results


@pytest.mark.parametrize("case", list(CASES))
def test_refused_before_loading_with_one_sentence(refusals, case):
    result, fragments = refusals[case]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "Loading models" not in result.stderr, "the check came after loading"
    message = result.stderr.strip()
    assert message.startswith("error: "), message
    for fragment in fragments:
        assert fragment in message, message
    if case == "text file as transformer":  # advice to download again is for damaged safetensors only
        assert "download" not in message.lower()


@pytest.mark.parametrize("start,kind,download", [
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", "a Git LFS pointer", False),
    (b"<!DOCTYPE html><html><body>Sign in</body></html>", "a web page (HTML)", False),
    (b"GGUF\x03\x00\x00\x00" + b"\x00" * 32, "a GGUF file", False),
    (b"PK\x03\x04" + b"\x00" * 32, "a ZIP archive (the format of PyTorch", False),
    (b"\x80\x02}q\x00(X", "a Python pickle", False),
    (b'{"_class_name": "HunyuanVideo15Transformer3DModel"}', "a JSON file", False),
    (b"\x13\x99\xfe" * 20, "If it was downloaded as .safetensors, the copy is damaged", True),
])
def test_a_file_that_is_not_safetensors_says_what_it_is(tmp_path, start, kind, download):
    from hyv_pack.hunyuan_i2v.errors import ModelFileError
    from hyv_pack.hunyuan_i2v.shared.files import check_safetensors

    path = tmp_path / "model.safetensors"
    path.write_bytes(start)
    with pytest.raises(ModelFileError) as caught:
        check_safetensors(path)
    assert "is not a valid safetensors file" in str(caught.value) and kind in str(caught.value)
    assert ("download 'model.safetensors' again" in str(caught.value).lower()) == download
