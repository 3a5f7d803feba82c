"""WaveSpeed's hosted Hunyuan image-to-video endpoints as nodes that return real frames.

One node per endpoint, each reading its widgets (names, ranges, choices,
defaults) from the endpoint's description in the engine, so a widget cannot
drift from what is validated and sent. A node per endpoint, rather than one
node with a model switch, shows only the settings that endpoint takes: no
widget silently does nothing.

The nodes only adapt: widgets -> jobs, ComfyUI services (folders, progress,
node text, interrupt, VIDEO type) -> plain callables. Uploading, submitting,
polling, downloading and the journal live in the engine.
"""

from __future__ import annotations

import logging

import torch

from ..hunyuan_i2v.errors import UserInputError
from ..hunyuan_i2v.wavespeed.client import ClientSettings, probe_image_size
from ..hunyuan_i2v.wavespeed.endpoints import BOOL, CHOICE, HUNYUAN_VIDEO_13B, HUNYUAN_VIDEO_15, INT, Endpoint, Param
from ..hunyuan_i2v.wavespeed.errors import WaveSpeedInterrupted
from ..hunyuan_i2v.wavespeed.jobs import I2VJob, encode_image, orientation_choice
from ..hunyuan_i2v.wavespeed.journal import JobJournal
from ..hunyuan_i2v.wavespeed.keys import API_KEY_ENV, resolve_api_key
from ..hunyuan_i2v.wavespeed.runner import run_batch, status_text
from . import comfy_bridge

log = logging.getLogger(__name__)

AUTO = "auto"
REMOTE_SEARCH_WORDS = ("hunyuan", "hunyuanvideo", "hunyuan video", "i2v", "image to video", "img2vid", "wavespeed",
                       "remote", "api", "cloud", "paid")


def client_settings() -> ClientSettings:
    """Network timing for the nodes (tests replace this with faster timing)."""
    return ClientSettings.from_env()


def _widget(param: Param, endpoint: Endpoint) -> tuple:
    if param.kind == INT:
        options = {"default": param.default, "min": param.low, "max": param.high, "step": 1,
                   "tooltip": param.tooltip}
        if param.name == endpoint.seed_param:
            options["control_after_generate"] = True
        return ("INT", options)
    if param.kind == CHOICE:
        choices = [AUTO, *param.choices] if param.auto_by_orientation else list(param.choices)
        return (choices, {"default": AUTO if param.auto_by_orientation else param.default, "tooltip": param.tooltip})
    if param.kind == BOOL:
        return ("BOOLEAN", {"default": param.default, "tooltip": param.tooltip})
    raise ValueError(f"unknown parameter kind {param.kind!r}")


class _WaveSpeedNode:
    ENDPOINT: Endpoint
    FILE_PREFIX: str
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
        endpoint = cls.ENDPOINT
        prompt_note = "" if endpoint.prompt_required else " May be empty."
        required = {"prompt": ("STRING", {"multiline": True, "default": "",
                                          "tooltip": "What should happen in the video." + prompt_note})}
        required.update({param.name: _widget(param, endpoint) for param in endpoint.params})
        required.update({
            "timeout": ("INT", {"default": 1200, "min": 60, "max": 7200, "step": 30,
                                "tooltip": "Seconds to wait for each video. A task still running then stays "
                                           "recorded; running again resumes it without paying again."}),
            "concurrency": ("INT", {"default": 2, "min": 1, "max": 8, "step": 1,
                                    "tooltip": "Videos of a batch running at once (a default WaveSpeed account "
                                               "allows 2)."}),
            "filename_prefix": ("STRING", {"default": cls.FILE_PREFIX,
                                           "tooltip": "Where the MP4 goes inside the output folder; the task id "
                                                      "is appended."}),
        })
        sent = "sent inline" if endpoint.inline_image else "uploaded"
        return {
            "required": required,
            "optional": {
                "image": ("IMAGE", {"tooltip": f"Start image(s), {sent} as PNG; a batch of N makes N videos."}),
                "image_url": ("STRING", {"default": "",
                                         "tooltip": "Public URL of the start image; used only when no IMAGE is "
                                                    "connected."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, **inputs):  # noqa: N802 - ComfyUI's name
        # ComfyUI already runs the node again whenever a widget or an upstream
        # output changes, so nothing needs hashing here. The one case it cannot
        # see is a random seed: unchanged widgets then ask WaveSpeed for a new
        # video. NaN never equals the previous value, so ComfyUI runs the node.
        # A seed that comes through a link is not passed here; running again is
        # then the safe side, as a fixed seed's video comes back from the journal
        # without a new charge.
        seed = inputs.get(cls.ENDPOINT.seed_param)
        if seed is None or int(seed) == cls.ENDPOINT.random_seed:
            return float("nan")
        return False

    def generate(self, prompt, timeout, concurrency, filename_prefix, image=None, image_url="", unique_id=None,
                 **values):
        settings = client_settings()
        jobs = _jobs(self.ENDPOINT, prompt, values, image, (image_url or "").strip(), settings)
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


def _description(endpoint: Endpoint, model: str) -> str:
    defaults = {p.name: p.default for p in endpoint.params}
    return (f"Animates an image with {model} on WaveSpeed's servers (paid; at the default settings "
            f"{endpoint.price.describe(defaults)}). Returns the decoded frames, a VIDEO, "
            f"the video URL and the task id; the MP4 is saved in the output folder first. The API key comes from "
            f"{API_KEY_ENV} or a key file, never from the workflow. Interrupted or crashed runs resume their task "
            "when the same inputs run again, so no video is paid twice.")


class HunyuanVideoI2VWaveSpeed(_WaveSpeedNode):
    ENDPOINT = HUNYUAN_VIDEO_13B
    FILE_PREFIX = "wavespeed/hunyuan_i2v"
    SEARCH_ALIASES = [*REMOTE_SEARCH_WORDS, "13b", "hunyuanvideo i2v"]
    DESCRIPTION = _description(HUNYUAN_VIDEO_13B, "HunyuanVideo-I2V (13 B)")


class HunyuanVideo15I2VWaveSpeed(_WaveSpeedNode):
    ENDPOINT = HUNYUAN_VIDEO_15
    FILE_PREFIX = "wavespeed/hunyuan_video15_i2v"
    SEARCH_ALIASES = [*REMOTE_SEARCH_WORDS, "1.5", "hunyuanvideo 1.5"]
    DESCRIPTION = _description(HUNYUAN_VIDEO_15, "HunyuanVideo-1.5")


def _subfolder(path, output_dir) -> str:
    relative = path.parent.relative_to(output_dir).as_posix()
    return "" if relative == "." else relative


def _jobs(endpoint: Endpoint, prompt, values, image, image_url, settings) -> list[I2VJob]:
    automatic = [p for p in endpoint.params if p.auto_by_orientation and values.get(p.name) == AUTO]
    if image is not None:
        if image.ndim != 4 or image.shape[0] == 0:
            raise UserInputError(f"Expected an IMAGE batch [B, H, W, C], got shape {tuple(image.shape)}.")
        height, width = int(image.shape[1]), int(image.shape[2])
        chosen = {**values, **{p.name: orientation_choice(p, width, height) for p in automatic}}
        pixels = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        jobs = []
        for frame in pixels:
            png, digest = encode_image(frame)
            jobs.append(I2VJob(prompt, chosen, endpoint, image_png=png, image_digest=digest))
        return jobs
    if not image_url:
        raise UserInputError("No start image: connect an IMAGE (e.g. from Load Image) or fill in image_url.")
    chosen = dict(values)
    if automatic:
        width, height = probe_image_size(image_url, settings)
        chosen.update({p.name: orientation_choice(p, width, height) for p in automatic})
    return [I2VJob(prompt, chosen, endpoint, image_url=image_url)]


NODE_CLASS_MAPPINGS = {
    "HunyuanVideoI2VWaveSpeed": HunyuanVideoI2VWaveSpeed,
    "HunyuanVideo15I2VWaveSpeed": HunyuanVideo15I2VWaveSpeed,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "HunyuanVideoI2VWaveSpeed": "HunyuanVideo-I2V 13 B (WaveSpeed remote)",
    "HunyuanVideo15I2VWaveSpeed": "HunyuanVideo-1.5 I2V (WaveSpeed remote)",
}
