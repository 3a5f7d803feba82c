"""Batch: a file of jobs, the models loaded once, finished jobs skipped, a failed job reported at the end."""

import json

from conftest import test_image
from test_cli import run_cli

from hyv_pack.hunyuan_i2v.shared.video import read_mp4

TINY = ("--models", "{models}", "--diffusers", "tiny_v2", "--dtype", "fp32", "--steps", "1", "--width", "48",
        "--height", "32")


def tiny_model_args(models_root):
    return [a.format(models=models_root) for a in TINY]


def write_jsonl(path, jobs):
    path.write_text("\n".join(json.dumps(job) for job in jobs) + "\n")
    return path


def images(folder, *names):
    for index, name in enumerate(names):
        test_image(32, 48, seed=index)[1].save(folder / name)


def test_jobs_render_with_the_models_loaded_once_and_finished_jobs_are_skipped(models_root, tmp_path):
    images(tmp_path, "a.png", "b.png")
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [
        {"image": "a.png", "prompt": "a boat", "seed": 1, "frames": 5},
        {"image": "b.png", "prompt": "a tree", "seed": 2, "frames": 1, "output": "tree.mp4"},
        {"image": "a.png", "prompt": "a boat", "seed": 3, "frames": 9, "cfg_scale": 2.5},
    ])
    result = run_cli(str(jobs), "--output-dir", str(tmp_path / "out"), *tiny_model_args(models_root), command="batch")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("v2 (token replace) from") == 1  # loaded once for three videos
    assert "Batch: 3 rendered, 0 skipped, 0 failed." in result.stderr
    assert [read_mp4(tmp_path / "out" / name)[0].shape[0] for name in ("0001_a.mp4", "tree.mp4", "0003_a.mp4")] == [
        5, 1, 9]
    assert "cfg 2.5" in result.stderr and "seed 3" in result.stderr

    again = run_cli(str(jobs), "--output-dir", str(tmp_path / "out"), *tiny_model_args(models_root), command="batch")
    assert again.returncode == 0, again.stderr
    assert "0 to render, 3 skipped" in again.stderr
    assert "Loading models" not in again.stderr  # nothing to do: nothing loaded


def test_csv_jobs_with_settings_per_line(tmp_path):
    images(tmp_path, "a.png")
    (tmp_path / "jobs.csv").write_text(
        "image,prompt,seed,frames,width,height,output\n"
        'a.png,"a boat, at sea",5,5,32,32,boat.mp4\n'
        ",,6,1,,,\n"  # no image: the demo's; sizes from the command line
    )
    result = run_cli(str(tmp_path / "jobs.csv"), "--demo", "--demo-family", "hunyuan_video_13b", "--steps", "1",
                     command="batch")
    assert result.returncode == 0, result.stderr
    assert read_mp4(tmp_path / "boat.mp4")[0].shape == (5, 32, 32, 3)
    assert read_mp4(tmp_path / "0002_demo.mp4")[0].shape == (1, 64, 64, 3)


def test_bad_jobs_are_refused_before_anything_loads(tmp_path):
    images(tmp_path, "a.png")
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [
        {"image": "a.png", "seed": 1},
        {"image": "a.png", "frames": 10},
        {"image": "missing.png"},
        {"image": "a.png", "sampler": "euler"},
    ])
    result = run_cli(str(jobs), "--demo", command="batch")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "3 job(s) have a problem (nothing was rendered)" in result.stderr
    assert "jobs.jsonl line 2: frames must be 4n+1" in result.stderr
    assert "jobs.jsonl line 3: Start image" in result.stderr and "does not exist" in result.stderr
    assert "jobs.jsonl line 4: unknown field 'sampler'" in result.stderr
    assert "Loading models" not in result.stderr and not list(tmp_path.glob("*.mp4"))


def test_invalid_json_line(tmp_path):
    (tmp_path / "jobs.jsonl").write_text('{"image": "a.png"}\n{"image": a.png}\n')
    result = run_cli(str(tmp_path / "jobs.jsonl"), "--demo", command="batch")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "jobs.jsonl line 2 is not valid JSON" in result.stderr


def test_a_failed_job_does_not_stop_the_batch(tmp_path, monkeypatch, capsys):
    """One job fails while rendering (here: a sampler error injected for seed 13); the others are made."""
    from hyv_pack.hunyuan_i2v import cli, stages

    real_sample = stages.run_sample

    def run_sample(model, cond, requested, *args, **kwargs):
        if requested.seed == 13:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real_sample(model, cond, requested, *args, **kwargs)

    monkeypatch.setattr(stages, "run_sample", run_sample)
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [{"seed": 1}, {"seed": 13}, {"seed": 2}])
    code = cli.main(["batch", str(jobs), "--demo", "--demo-family", "hunyuan_video_13b", "--frames", "1", "--steps",
                     "1", "--quiet"])
    stderr = capsys.readouterr().err
    assert code == 1
    assert (tmp_path / "0001_demo.mp4").exists() and (tmp_path / "0003_demo.mp4").exists()
    assert not (tmp_path / "0002_demo.mp4").exists()
    summary = stderr[stderr.index("Batch:"):]
    assert "2 rendered, 0 skipped, 1 failed" in summary
    assert "failed: jobs.jsonl line 2" in summary and "illegal memory access" in summary
