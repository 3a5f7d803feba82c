"""Several GPUs per video (sequence parallel), checked on the CPU with gloo processes.

The parallel results must equal one process's to float rounding: per
transformer pass (both 13 B releases, 1.5; odd token counts, padded text, a
first frame spanning shards), through sampling and the command line's
renderer (tests/parallel_harness.py under torchrun), through the real
``torchrun ... generate`` entry point, and through the nodes with the
loader's worker pool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import encode_inputs, run_node, sample_inputs, te_choice, test_image, transformer_inputs

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5


def torchrun(args: list[str], cwd: Path, timeout: int = 600, processes: int = 2) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("HUNYUAN_I2V_MODELS", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] + args
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def harness(check: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{check}.json"
    done = torchrun([str(ROOT / "tests" / "parallel_harness.py"), check, str(out), str(tmp_path / "work")], tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


# ---------------------------------------------------------------- the split itself

def test_each_transformer_pass_equals_one_process(tmp_path):
    result = harness("transformer", tmp_path)
    expected = {"v2 first frame spanning shards", "v2 odd token count", "v1 padded text", "v1 odd token count",
                "1.5 odd token count", "1.5 even"}
    assert expected <= set(result)
    for name, difference in result.items():
        assert difference < TOLERANCE, (name, difference)


def test_sampling_and_command_line_renderer_equal_one_process(tmp_path):
    result = harness("stages", tmp_path)
    for name in ("13b v2 sampling", "13b v1 sampling with cfg", "1.5 sampling with cfg", "command line frames",
                 "fp8 storage", "fp8 + LoRA on proj_out + taylorseer"):
        assert result[name] < TOLERANCE, (name, result[name])
    assert result["LoRA changes the video"] > 1e-2  # the LoRA case is not the plain one
    assert result["rank 1: other ranks return no frames"] is True
    # A bad input found by the first process (which alone encodes) stops every process with its sentence.
    assert result["error on the first process"] == result["rank 1: error on the first process"] == \
        "UserInputError: Give the image at 80x48."


def test_regional_compilation_on_split_model_equals_one_process(tmp_path):
    result = harness("compile", tmp_path)
    assert result["compiled blocks"] < TOLERANCE


def test_torchrun_generate_writes_one_video(tmp_path):
    """The documented entry point: only the first process writes, and the video matches one process's."""
    import av
    import numpy as np

    common = ["generate", "--demo", "--dtype", "fp32", "--frames", "9", "--steps", "3", "--quiet"]
    done = torchrun(["-m", "hunyuan_i2v"] + common + ["--output", str(tmp_path / "two.mp4")], ROOT)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "2 processes share each video" in done.stderr
    assert done.stderr.count("Wrote ") == 1  # the other process neither writes nor speaks
    single = subprocess.run([sys.executable, "-m", "hunyuan_i2v"] + common + ["--output", str(tmp_path / "one.mp4")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-4000:]

    def frames(path):
        with av.open(str(path)) as container:
            return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float32)

    two, one = frames(tmp_path / "two.mp4"), frames(tmp_path / "one.mp4")
    assert two.shape == one.shape
    # The frames before encoding agree to 1e-5 (harness); H.264 may round a rare pixel differently.
    assert np.abs(two - one).mean() < 1.0


def test_torchrun_one_rank_failing_ends_every_rank_quickly(tmp_path, monkeypatch):
    """Rank 1 raises at step 1 of a run that would take minutes; rank 0 waits for it in a collective. The failed
    rank leaves without waiting at the exit barrier, torchrun stops rank 0, and the run ends with rank 1's error."""
    from hyv_pack.hunyuan_i2v.parallel import ranks

    common = ["generate", "--demo", "--dtype", "fp32", "--frames", "33", "--width", "128", "--height", "128",
              "--quiet"]
    start = time.monotonic()
    done = torchrun(["-m", "hunyuan_i2v"] + common + ["--steps", "2", "--output", str(tmp_path / "ok.mp4")], ROOT)
    normal = time.monotonic() - start  # start-up, loading, 2 steps, decode, writing
    assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.setenv(ranks.FAIL_ENV, "1:1")
    start = time.monotonic()
    done = torchrun(["-m", "hunyuan_i2v"] + common + ["--steps", "200", "--output", str(tmp_path / "x.mp4")], ROOT,
                    timeout=300)
    failed = time.monotonic() - start
    assert done.returncode != 0 and "injected failure on worker 1 at step 1" in done.stderr
    assert failed < normal + 10, (failed, normal)  # ended within seconds of the failure, not at a timeout
    assert not (tmp_path / "x.mp4").exists()


# ---------------------------------------------------------------- pure parts

def test_shard_arithmetic():
    from hyv_pack.hunyuan_i2v.shared.sequence_parallel import Shards

    # 45 tokens over 2 ranks: 23 each after one padding token, which sits at the end of the last shard
    first, last = Shards(rank=0, degree=2, tokens=45, first_frame_tokens=15), Shards(rank=1, degree=2, tokens=45,
                                                                                     first_frame_tokens=15)
    assert (first.padded, first.per_rank, last.start) == (46, 23, 23)
    assert (first.real_in_shard(), last.real_in_shard()) == (23, 22)
    assert (first.first_frame_in_shard(), last.first_frame_in_shard()) == (15, 0)
    spanning = Shards(rank=1, degree=2, tokens=15, first_frame_tokens=15)
    assert spanning.first_frame_in_shard() == 7
    mask = last.key_mask(23, 3, torch.tensor([[1, 1, 0]]), 1, "cpu") == 0  # additive: 0 kept, -inf masked
    assert mask.shape == (1, 1, 1, 26)
    assert mask[0, 0, 0, :22].all() and not mask[0, 0, 0, 22:].any()  # padding and the text copy masked
    kept = first.key_mask(23, 3, torch.tensor([[1, 1, 0]]), 1, "cpu") == 0
    assert kept[0, 0, 0].tolist() == [True] * 23 + [True, True, False]


def test_head_count_must_divide_by_the_gpu_count():
    from hyv_pack.hunyuan_i2v.errors import UserInputError
    from hyv_pack.hunyuan_i2v.shared.sequence_parallel import check_degree

    check_degree(24, 8)
    with pytest.raises(UserInputError, match="24 attention heads.*Use 2, 3, 4, 6, 8, 12, 24 GPUs"):
        check_degree(24, 5)


@pytest.mark.parametrize("name", ["tiny15_comfy.safetensors", "tiny15_tencent.safetensors", "diffusers/tiny15"])
def test_head_count_is_read_without_loading_the_weights(models15_root, name):
    from hyv_pack.hunyuan_i2v.loading import attention_heads

    folder = "" if name.startswith("diffusers") else "diffusion_models"
    assert attention_heads(models15_root / folder / name) == 2


def test_head_count_of_13b_files(models_root):
    from hyv_pack.hunyuan_i2v.loading import attention_heads

    assert attention_heads(models_root / "diffusion_models" / "tiny_v2.safetensors") == 2
    assert attention_heads(models_root / "diffusers" / "tiny_v1") == 2


def test_messages_rebuild_the_packs_dataclasses_without_pickle():
    from hyv_pack.hunyuan_i2v.parallel import messages
    from hyv_pack.hunyuan_i2v.shared.loras import LoraSpec
    from hyv_pack.hunyuan_i2v.shared.sampling import SamplingSettings, StepInfo

    value = {"settings": SamplingSettings(seed=3, steps=2), "lora": (LoraSpec(Path("/x/a.safetensors"), 0.5),),
             "step": StepInfo(1, 2, None, torch.ones(2)), "dtype": torch.bfloat16}
    back = messages.from_bytes(messages.to_bytes(value))
    assert back["settings"] == value["settings"] and back["lora"] == value["lora"] and back["dtype"] is torch.bfloat16
    assert torch.equal(back["step"].denoised, torch.ones(2))

    from dataclasses import dataclass

    @dataclass
    class Foreign:
        x: int

    with pytest.raises(TypeError, match="not one of this pack's classes"):
        messages.to_bytes(Foreign(1))


def test_errors_from_other_processes_keep_the_users_sentence():
    from hyv_pack.hunyuan_i2v.errors import ModelFileError, WorkerError, rebuild

    assert isinstance(rebuild("ModelFileError", "Pick the VAE.", "GPU worker 1"), ModelFileError)
    other = rebuild("OutOfMemoryError", "CUDA out of memory", "GPU worker 1 (sampling)")
    assert isinstance(other, WorkerError) and "GPU worker 1 (sampling) failed: OutOfMemoryError" in str(other)


# ---------------------------------------------------------------- the nodes, with the worker pool

@pytest.fixture(scope="module")
def graph15_parts(models15_root):
    """Conditioning from the tiny 1.5, and the one-process latent to compare with."""
    os.environ["HUNYUAN_I2V_MODELS"] = str(models15_root)
    try:
        folder = f"[diffusers] {models15_root / 'diffusers' / 'tiny15'}"
        encoders = run_node("HunyuanI2VLoadTextEncoders", **te_choice(models15_root / "diffusers" / "tiny15"))[0]
        vae = run_node("HunyuanI2VLoadVAE", vae_name="tiny15_vae.safetensors", dtype="fp32")[0]
        image, _ = test_image(64, 80)
        cond = run_node("HunyuanI2VEncode", **encode_inputs(encoders, vae, image, prompt='a sign "OPEN"',
                                                            negative_prompt="blurry", width=80, height=48))[0]
        single = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("tiny15_comfy.safetensors"))[0]
        yield {"folder": folder, "cond": cond, "vae": vae, "single": single}
    finally:
        os.environ.pop("HUNYUAN_I2V_MODELS", None)


@pytest.fixture(scope="module")
def pooled15(graph15_parts, models15_root):
    os.environ["HUNYUAN_I2V_MODELS"] = str(models15_root)
    model, info = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("tiny15_comfy.safetensors", gpus=2))
    yield model, info
    model.pool.stop()
    os.environ.pop("HUNYUAN_I2V_MODELS", None)


def test_loader_with_two_gpus_says_per_gpu_weights(pooled15):
    model, info = pooled15
    assert "HunyuanVideo-1.5" in info and "Split over 2 GPUs" in info and "GB of weights" in info
    assert model.pool.running and len(model.pool.processes) == 2
    assert next(model.model.parameters()).device.type == "meta"  # the weights live in the workers only


def test_node_path_with_worker_pool_equals_one_process(graph15_parts, pooled15):
    model, _ = pooled15
    settings = dict(seed=11, steps=3, frames=9)
    alone = run_node("HunyuanI2VSample", **sample_inputs(graph15_parts["single"], graph15_parts["cond"], **settings))[0]
    split = run_node("HunyuanI2VSample", **sample_inputs(model, graph15_parts["cond"], **settings))[0]
    assert (split["samples"] - alone["samples"]).abs().max().item() < TOLERANCE
    assert split["hunyuan_i2v"] == alone["hunyuan_i2v"]
    frames_alone = run_node("HunyuanI2VDecode", vae=graph15_parts["vae"], latent=alone, tiling=False, tile_size=256,
                            fps=24.0)[0]
    frames_split = run_node("HunyuanI2VDecode", vae=graph15_parts["vae"], latent=split, tiling=False, tile_size=256,
                            fps=24.0)[0]
    assert (frames_split - frames_alone).abs().max().item() < 1e-4


def test_lora_reaches_the_workers(graph15_parts, pooled15, tmp_path):
    from parallel_harness import write_lora

    model, _ = pooled15
    config = model.model.config
    lora = write_lora(tmp_path / "lora.safetensors", config.num_attention_heads * config.attention_head_dim,
                      config.out_channels)
    (Path(os.environ["HUNYUAN_I2V_MODELS"]) / "loras").mkdir(exist_ok=True)
    target = Path(os.environ["HUNYUAN_I2V_MODELS"]) / "loras" / "pool_test_lora.safetensors"
    target.write_bytes(lora.read_bytes())
    try:
        settings = dict(seed=3, steps=2, frames=5)
        outputs = []
        for base in (graph15_parts["single"], model):
            with_lora = run_node("HunyuanI2VLoRA", model=base, lora_name=target.name, strength=0.8)[0]
            outputs.append(run_node("HunyuanI2VSample", **sample_inputs(with_lora, graph15_parts["cond"],
                                                                        **settings))[0]["samples"])
        plain = run_node("HunyuanI2VSample", **sample_inputs(model, graph15_parts["cond"], **settings))[0]["samples"]
    finally:
        target.unlink()
    assert (outputs[1] - outputs[0]).abs().max().item() < TOLERANCE
    assert (outputs[1] - plain).abs().max().item() > 1e-3  # the workers ran the LoRA, and only for that run


def test_pool_reports_each_step_with_its_preview_and_cancels(graph15_parts, pooled15):
    from hyv_pack.hunyuan_i2v import stages
    from hyv_pack.hunyuan_i2v.shared.sampling import SamplingSettings

    model, _ = pooled15
    cond = graph15_parts["cond"]
    steps = []
    stages.run_sample(model, cond, SamplingSettings(seed=1, steps=3, num_frames=5), on_step=steps.append,
                      previews=True)
    assert [s.index for s in steps] == [0, 1, 2] and all(s.denoised is not None for s in steps)

    class Cancel(Exception):
        pass

    seen = []

    def poll():
        if len(seen) >= 2:
            raise Cancel()

    start = time.monotonic()
    with pytest.raises(Cancel):
        stages.run_sample(model, cond, SamplingSettings(seed=1, steps=200, num_frames=5), on_step=seen.append,
                          poll=poll)
    assert len(seen) < 20 and time.monotonic() - start < 60
    assert model.pool.running  # the workers stopped the job together and wait for the next one
    again = stages.run_sample(model, cond, SamplingSettings(seed=1, steps=3, num_frames=5))
    assert again.latent["samples"].shape[2] == 2


def test_pool_refuses_first_block_cache_and_relays_the_users_errors(graph15_parts, pooled15):
    from hyv_pack.hunyuan_i2v.errors import UserInputError

    model, _ = pooled15
    with pytest.raises(UserInputError, match="taylorseer"):
        run_node("HunyuanI2VSample", **sample_inputs(model, graph15_parts["cond"], steps=2, frames=5,
                                                     cache="first block cache"))
    with pytest.raises(UserInputError, match="4n\\+1|frames"):
        run_node("HunyuanI2VSample", **sample_inputs(model, graph15_parts["cond"], steps=2, frames=6))
    assert model.pool.running


def test_dead_worker_is_an_error_then_the_pool_starts_again(graph15_parts, pooled15):
    from hyv_pack.hunyuan_i2v import stages
    from hyv_pack.hunyuan_i2v.errors import WorkerError
    from hyv_pack.hunyuan_i2v.shared.sampling import SamplingSettings

    model, _ = pooled15
    cond = graph15_parts["cond"]

    def kill_second(info):
        if info.index == 1:
            model.pool.processes[1].kill()

    start = time.monotonic()
    with pytest.raises(WorkerError, match="GPU worker .*start again on the next run"):
        stages.run_sample(model, cond, SamplingSettings(seed=1, steps=500, num_frames=5), on_step=kill_second)
    assert time.monotonic() - start < 60  # an error, not a hang
    assert not model.pool.running and not model.pool.processes
    result = stages.run_sample(model, cond, SamplingSettings(seed=1, steps=2, num_frames=5))
    assert model.pool.running and result.latent["samples"].shape[2] == 2


def test_a_new_pool_stops_the_old_one_which_starts_again_when_used(graph15_parts, pooled15, models15_root,
                                                                    monkeypatch):
    """One set of GPUs holds one pool's copies at a time (a changed loader widget must not double the memory)."""
    from hyv_pack.hunyuan_i2v import stages
    from hyv_pack.hunyuan_i2v.shared.sampling import SamplingSettings

    old, _ = pooled15
    assert old.pool.running
    monkeypatch.setenv("HUNYUAN_I2V_MODELS", str(models15_root))
    new, _ = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("tiny15_tencent.safetensors", gpus=2))
    try:
        assert new.pool.running and not old.pool.running and not old.pool.processes
        settings = SamplingSettings(seed=1, steps=2, num_frames=5)
        first = stages.run_sample(old, graph15_parts["cond"], settings).latent["samples"]  # restarts its workers
        assert old.pool.running and not new.pool.running
        alone = stages.run_sample(graph15_parts["single"], graph15_parts["cond"], settings).latent["samples"]
        assert (first - alone).abs().max().item() < TOLERANCE
    finally:
        new.pool.stop()


def test_pool_stops_its_workers_when_dropped(models15_root, monkeypatch):
    import gc

    monkeypatch.setenv("HUNYUAN_I2V_MODELS", str(models15_root))
    model, _ = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("tiny15_comfy.safetensors", gpus=2))
    processes = list(model.pool.processes)
    del model
    gc.collect()
    assert all(p.poll() is not None for p in processes)


def test_gpus_above_the_machines_count_is_refused(models15_root, monkeypatch):
    from hyv_pack.hunyuan_i2v.errors import UserInputError
    from hyv_pack.hunyuan_i2v.parallel.pool import WorkerPool

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(UserInputError, match="'GPUs to use' is 4 but this machine has 2"):
        WorkerPool(4, "cuda", {})


def test_planner_counts_each_gpus_share_of_the_tokens(models15_root):
    """Per rank, the working memory is that of 1/N of the image tokens (weights stay whole on every GPU)."""
    from types import SimpleNamespace

    from hyv_pack.hunyuan_i2v import loading, planner, stages

    folder = models15_root / "diffusers" / "tiny15"
    model = loading.load_model(folder, "fp32")
    vae = loading.load_vae(folder, "fp32")
    encoders = loading.load_text_encoders(loading.TextEncoderSources(folder=folder), "fp32", device="cpu")
    cond = stages.run_encode(encoders, vae, test_image(48, 64)[0], "a cat", "", width=64, height=48)
    alone = planner.sample_estimate(model, cond, 33)
    tokens = planner._tokens(model, cond, 33)[0]
    split = SimpleNamespace(ulysses_degree=4, ring_degree=1)
    model.model._parallel_config = SimpleNamespace(context_parallel_config=split)
    try:
        shared = planner.sample_estimate(model, cond, 33)
        tokens_per_gpu = planner._tokens(model, cond, 33)[0]
    finally:
        model.model._parallel_config = None
    assert shared.weights == alone.weights and shared.activations < alone.activations
    assert tokens_per_gpu == -(-tokens // 4)


def test_gpu_count_that_does_not_divide_the_heads_is_refused_before_any_worker_starts(models15_root, monkeypatch):
    """The tiny 1.5 has 2 heads: 3 GPUs cannot share them."""
    from hyv_pack.hunyuan_i2v.errors import UserInputError
    from hyv_pack.hunyuan_i2v.parallel import pool as pool_module

    started = []
    real_popen = pool_module.subprocess.Popen
    monkeypatch.setattr(pool_module.subprocess, "Popen", lambda *a, **k: started.append(real_popen(*a, **k))
                        or started[-1])
    monkeypatch.setenv("HUNYUAN_I2V_MODELS", str(models15_root))
    with pytest.raises(UserInputError, match="2 attention heads, which 3 GPUs cannot share evenly. Use 2 GPUs"):
        run_node("HunyuanI2VLoadTransformer", **transformer_inputs("tiny15_comfy.safetensors", gpus=3))
    assert started == []  # refused from the file's header, before any worker loads a copy of the weights


def test_cancel_while_the_workers_load_stops_them_at_once(models15_root):
    from hyv_pack.hunyuan_i2v import loading
    from hyv_pack.hunyuan_i2v.parallel import pool as pool_module

    started = []
    real_popen = pool_module.subprocess.Popen

    class Cancel(Exception):
        pass

    def poll():
        raise Cancel()

    pool_module.subprocess.Popen = lambda *a, **k: started.append(real_popen(*a, **k)) or started[-1]
    try:
        begin = time.monotonic()
        with pytest.raises(Cancel):
            pool_module.load_model_on_gpus(2, models15_root / "diffusion_models" / "tiny15_comfy.safetensors", "fp32",
                                       device_type="cpu", poll=poll)
    finally:
        pool_module.subprocess.Popen = real_popen
    assert len(started) == 2 and all(p.poll() is not None for p in started)
    assert time.monotonic() - begin < 30


# ---------------------------------------------------------------- one worker failing, a killed parent, Cancel

def test_one_worker_failing_mid_sampling_ends_the_run_within_10_s_then_the_pool_works(graph15_parts, models15_root,
                                                                                      monkeypatch):
    """Worker 1 raises at step 1 while worker 0 waits for it in a collective: the run ends with worker 1's
    error, every worker is stopped, and the next run starts them again."""
    from hyv_pack.hunyuan_i2v import stages
    from hyv_pack.hunyuan_i2v.parallel import worker
    from hyv_pack.hunyuan_i2v.shared.sampling import SamplingSettings

    monkeypatch.setenv("HUNYUAN_I2V_MODELS", str(models15_root))
    monkeypatch.setenv(worker.FAIL_ENV, "1:1")
    model, _ = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("tiny15_comfy.safetensors", gpus=2))
    monkeypatch.delenv(worker.FAIL_ENV)  # workers started from here on run normally
    try:
        processes = list(model.pool.processes)
        reached = []
        with pytest.raises(RuntimeError, match="GPU worker 1 .*injected failure on worker 1 at step 1") as error:
            stages.run_sample(model, graph15_parts["cond"], SamplingSettings(seed=1, steps=500, num_frames=5),
                              on_step=lambda info: reached.append(time.monotonic()))
        ended = time.monotonic()
        assert reached and ended - reached[0] < 10, ended - reached[0]
        assert "start again on the next run" in str(error.value)
        assert all(p.poll() is not None for p in processes)  # none left waiting in a collective
        again = stages.run_sample(model, graph15_parts["cond"], SamplingSettings(seed=1, steps=2, num_frames=5))
        assert model.pool.running and again.latent["samples"].shape[2] == 2
    finally:
        model.pool.stop()


def test_cancel_lands_inside_a_step_in_the_pool(graph15_parts, pooled15):
    """The workers agree on a cancel before every transformer block, not once per step."""
    from hyv_pack.hunyuan_i2v import stages
    from hyv_pack.hunyuan_i2v.shared.sampling import SamplingSettings

    model, _ = pooled15

    class Cancel(Exception):
        pass

    flag = {}

    def poll():
        if flag:
            raise Cancel()

    def on_step(info):
        if info.index == 2:
            flag["at"] = time.monotonic()

    with pytest.raises(Cancel):
        stages.run_sample(model, graph15_parts["cond"], SamplingSettings(seed=1, steps=500, num_frames=5),
                          on_step=on_step, poll=poll)
    # Generous against a loaded 2-core machine (measured 0.3-1.7 s there); the 500 steps would take minutes.
    assert time.monotonic() - flag["at"] < 5
    assert model.pool.running  # the workers left together and wait for the next job


PARENT_SCRIPT = """
import os, sys, time
sys.path.insert(0, {tests!r})
import conftest
from conftest import test_image
from hyv_pack.hunyuan_i2v import loading, stages
from hyv_pack.hunyuan_i2v.parallel import worker
from hyv_pack.hunyuan_i2v.shared.sampling import SamplingSettings
folder = {folder!r}
encoders = loading.load_text_encoders(loading.TextEncoderSources(folder=loading.Path(folder)), "fp32", device="cpu")
cond = stages.run_encode(encoders, loading.load_vae(folder, "fp32"), test_image(48, 64)[0], "a", "", width=64, height=48)
os.environ[worker.FAIL_ENV] = "1:1:hang"  # worker 1 hangs at step 1: worker 0 then waits for it in a collective
from hyv_pack.hunyuan_i2v.parallel import pool
model = pool.load_model_on_gpus(2, folder, "fp32", device_type="cpu")
print("pids", *[p.pid for p in model.pool.processes], flush=True)
print("env", open(f"/proc/{{model.pool.processes[0].pid}}/environ").read().replace("\\0", " "), flush=True)

def step(info):
    if info.index == 1:
        print("stuck", flush=True)
        time.sleep(600)  # killed here, while worker 0 waits in the collective

stages.run_sample(model, cond, SamplingSettings(seed=1, steps=50, num_frames=5), on_step=step)
"""


def test_workers_die_with_their_parent_and_meet_through_a_file(models15_root, tmp_path):
    """ComfyUI killed while one worker is busy and the other waits for it in a collective: none is left holding a GPU.
    Their rendezvous is a file, and their collectives use the loopback interface."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT_SCRIPT.format(tests=str(Path(__file__).parent),
                                           folder=str(models15_root / "diffusers" / "tiny15")))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pids, env = [], ""
    try:
        for line in parent.stdout:
            if line.startswith("pids"):
                pids = [int(p) for p in line.split()[1:]]
            if line.startswith("env"):
                env = line
            if line.startswith("stuck"):
                break
        assert len(pids) == 2
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() and
                                                   "zombie" not in Path(f"/proc/{pid}/status").read_text()
                                                   for pid in pids):
            time.sleep(0.1)
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()
                 and "zombie" not in Path(f"/proc/{pid}/status").read_text()]
        assert not alive
    finally:
        parent.kill()
        for pid in pids:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    assert "HUNYUAN_I2V_STORE=" in env and "GLOO_SOCKET_IFNAME=lo" in env


def test_super_resolution_in_the_worker_pool_equals_one_process(graph15_parts, models15_root, monkeypatch):
    """The SR release split over two workers: its conditioning (98 channels at full size) travels to them and the
    latent matches one process."""
    monkeypatch.setenv("HUNYUAN_I2V_MODELS", str(models15_root))
    base = run_node("HunyuanI2VSample", **sample_inputs(graph15_parts["single"], graph15_parts["cond"], seed=1,
                                                        steps=2, frames=5))[0]
    upsampler = run_node("HunyuanI2VLoadLatentUpsampler", upsampler_name="tiny_upsampler_720p.safetensors")[0]
    image, _ = test_image(64, 80)
    sr_cond = run_node("HunyuanI2VSuperResolution", conditioning=graph15_parts["cond"], latent=base,
                       upsampler=upsampler, vae=graph15_parts["vae"], image=image, resolution="720p", width=112,
                       height=64, noise_augmentation=0.7)[0]
    single = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("tiny15_720p_sr_comfy.safetensors"))[0]
    pooled = run_node("HunyuanI2VLoadTransformer", **transformer_inputs("tiny15_720p_sr_comfy.safetensors",
                                                                       gpus=2))[0]
    try:
        alone = run_node("HunyuanI2VSample", **sample_inputs(single, sr_cond, seed=4, steps=3))[0]["samples"]
        split = run_node("HunyuanI2VSample", **sample_inputs(pooled, sr_cond, seed=4, steps=3))[0]["samples"]
    finally:
        pooled.pool.stop()
    assert alone.shape == (1, 4, 2, 4, 7)
    assert (split - alone).abs().max().item() < TOLERANCE
