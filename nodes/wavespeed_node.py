"""WaveSpeed HunyuanVideo I2V: the hosted endpoint as a node that returns real frames.

The node only adapts: widgets -> jobs, ComfyUI services (folders, progress,
node text, interrupt, VIDEO type) -> plain callables. Uploading, submitting,
polling, downloading and the journal live in the engine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets

import torch

from ..hunyuan_i2v.wavespeed import client as wavespeed
from ..hunyuan_i2v.errors import UserInputError
from ..hunyuan_i2v.wavespeed.errors import WaveSpeedInterrupted
from ..hunyuan_i2v.wavespeed.jobs import (
    DEFAULT_FILE_PREFIX, I2VJob, encode_image, run_batch, size_for, status_text,
)
from ..hunyuan_i2v.wavespeed.journal import JobJournal
from ..hunyuan_i2v.wavespeed.keys import API_KEY_ENV, resolve_api_key
from . import comfy_bridge

log = logging.getLogger(__name__)

AUTO_SIZE = "auto"
SIZE_CHOICES = (AUTO_SIZE, *wavespeed.SIZES)
# Inputs that change the video; the rest (timeout, concurrency) only change how we wait.
_RESULT_INPUTS = ("prompt", "num_inference_steps", "duration", "seed", "size", "enable_safety_checker",
                  "image_url", "filename_prefix")


def client_settings() -> wavespeed.ClientSettings:
    """Network timing for the node (tests replace this with faster timing)."""
    return wavespeed.ClientSettings.from_env()


class HunyuanVideoI2VWaveSpeed:
    DESCRIPTION = (
        "Animates an image with HunyuanVideo-I2V on WaveSpeed's servers (paid: about "
        f"${wavespeed.PRICE_PER_RUN_USD:.2f} a video at the published price). Returns the decoded frames, a VIDEO, "
        "the video URL and the task id; the MP4 is saved in the output folder first. The API key comes from "
        f"{API_KEY_ENV} or a key file, never from the workflow. Interrupted or crashed runs resume "
        "their task when the same inputs run again, so no video is paid twice."
    )
    CATEGORY = "HunyuanVideo I2V/remote"
    FUNCTION = "generate"
    OUTPUT_NODE = True
    RETURN_TYPES = ("IMAGE", "VIDEO", "STRING", "STRING")
    RETURN_NAMES = ("frames", "video", "video_url", "task_id")
    OUTPUT_TOOLTIPS = (
        "All frames of the video(s), batch videos one after another.",
        "Core VIDEO for Save Video (None where ComfyUI has no VIDEO type).",
        "WaveSpeed's URL of each video, one per line (kept 7 days).",
        "WaveSpeed task id of each video, one per line.",
    )

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        return {
            "required": {
                "prompt": ("STRING", {"multiline": True, "default": "",
                                      "tooltip": "What should happen in the video."}),
                "num_inference_steps": ("INT", {"default": 30, "min": 2, "max": 30, "step": 1,
                                                "tooltip": "Denoising steps on WaveSpeed (2..30)."}),
                "duration": ("INT", {"default": 5, "min": 5, "max": 10, "step": 1,
                                     "tooltip": "Video length in seconds (5..10)."}),
                "seed": ("INT", {"default": -1, "min": -1, "max": 9_999_999_999, "control_after_generate": True,
                                 "tooltip": "-1 makes a new video on every run; a fixed seed lets ComfyUI and the "
                                            "journal reuse a finished video instead of paying again."}),
                "size": (list(SIZE_CHOICES), {"default": AUTO_SIZE,
                                              "tooltip": "Output width*height; auto picks landscape or portrait "
                                                         "from the image."}),
                "enable_safety_checker": ("BOOLEAN", {"default": True,
                                                      "tooltip": "WaveSpeed's content check of the output."}),
                "timeout": ("INT", {"default": 1200, "min": 60, "max": 7200, "step": 30,
                                    "tooltip": "Seconds to wait for each video. A task still running then stays "
                                               "recorded; running again resumes it without paying again."}),
                "concurrency": ("INT", {"default": 2, "min": 1, "max": 8, "step": 1,
                                       "tooltip": "Videos of a batch running at once (a default WaveSpeed "
                                                  "account allows 2)."}),
                "filename_prefix": ("STRING", {"default": DEFAULT_FILE_PREFIX,
                                               "tooltip": "Where the MP4 goes inside the output folder; the task "
                                                          "id is appended."}),
            },
            "optional": {
                "image": ("IMAGE", {"tooltip": "Start image(s); a batch of N makes N videos."}),
                "image_url": ("STRING", {"default": "",
                                         "tooltip": "Public URL of the start image; used only when no IMAGE is "
                                                    "connected."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, **inputs):  # noqa: N802 - ComfyUI's name
        if int(inputs.get("seed", -1)) == -1:
            return secrets.token_hex(16)  # a random seed is a new video every time
        stable = {name: inputs.get(name) for name in _RESULT_INPUTS}
        return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()

    def generate(self, prompt, num_inference_steps, duration, seed, size, enable_safety_checker, timeout,
                 concurrency, filename_prefix, image=None, image_url="", unique_id=None):
        settings = client_settings()
        jobs = _jobs(prompt, num_inference_steps, duration, seed, size, enable_safety_checker, image,
                     (image_url or "").strip(), settings)
        state_dir = comfy_bridge.state_directory()
        api_key = resolve_api_key(state_dir)
        output_dir = comfy_bridge.output_directory()
        send_text = comfy_bridge.node_text_sender(unique_id)
        progress = comfy_bridge.progress_bar(len(jobs))

        def on_update(statuses):
            send_text(status_text(statuses))
            progress.update_absolute(sum(s.phase == "done" for s in statuses), len(statuses))

        try:
            results = run_batch(jobs, api_key=api_key, output_dir=output_dir, journal=JobJournal(state_dir),
                                settings=settings, concurrency=concurrency, timeout_s=float(timeout),
                                file_prefix=filename_prefix, interrupted=comfy_bridge.interrupt_requested,
                                on_update=on_update, state_dir=state_dir)
        except WaveSpeedInterrupted:
            comfy_bridge.check_interrupt()  # raises ComfyUI's own interrupt when that was the cause
            raise

        shapes = {tuple(r.frames.shape[1:]) for r in results}
        if len(shapes) > 1:
            raise UserInputError(f"WaveSpeed returned videos of different sizes {sorted(shapes)}, which cannot form "
                                 "one IMAGE batch. They are saved: " + ", ".join(r.path.name for r in results))
        frames = torch.cat([r.frames for r in results], dim=0)
        video = (comfy_bridge.video_from_file(results[0].path) if len(results) == 1
                 else comfy_bridge.make_video(frames, results[0].fps))
        for result in results:
            log.info("WaveSpeed task %s (%s) saved to %s", result.task_id, result.source, result.path)
        previews = [{"filename": r.path.name, "subfolder": _subfolder(r.path, output_dir), "type": "output"}
                    for r in results]
        return {
            "ui": {"images": previews, "animated": (True,)},
            "result": (frames, video, "\n".join(r.video_url for r in results),
                       "\n".join(r.task_id for r in results)),
        }


def _subfolder(path, output_dir) -> str:
    relative = path.parent.relative_to(output_dir).as_posix()
    return "" if relative == "." else relative


def _jobs(prompt, steps, duration, seed, size, safety, image, image_url, settings) -> list[I2VJob]:
    common = dict(prompt=prompt, steps=int(steps), duration=int(duration), seed=int(seed),
                  enable_safety_checker=bool(safety))
    if image is not None:
        if image.ndim != 4 or image.shape[0] == 0:
            raise UserInputError(f"Expected an IMAGE batch [B, H, W, C], got shape {tuple(image.shape)}.")
        height, width = int(image.shape[1]), int(image.shape[2])
        chosen = size_for(width, height) if size == AUTO_SIZE else size
        pixels = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        jobs = []
        for frame in pixels:
            png, digest = encode_image(frame)
            jobs.append(I2VJob(size=chosen, image_png=png, image_digest=digest, **common))
        return jobs
    if not image_url:
        raise UserInputError("No start image: connect an IMAGE (e.g. from Load Image) or fill in image_url.")
    chosen = size
    if size == AUTO_SIZE:
        chosen = size_for(*wavespeed.probe_image_size(image_url, settings))
    return [I2VJob(size=chosen, image_url=image_url, **common)]


NODE_CLASS_MAPPINGS = {"HunyuanVideoI2VWaveSpeed": HunyuanVideoI2VWaveSpeed}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanVideoI2VWaveSpeed": "HunyuanVideo I2V (WaveSpeed remote)"}
