"""Load the models once and turn jobs into MP4 files, with a progress bar per stage.

A video that took minutes to sample is never lost to a problem with its
output file: it is written under a temporary name and renamed when whole,
and if that fails it goes to a rescue folder and the message says where.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from .. import families, loading, stages
from ..errors import UserInputError
from ..parallel import ranks
from ..parallel.ranks import share
from ..shared import video
from ..shared.sampling import SamplingSettings
from . import checks, jobs
from .options import PER_VIDEO_BY_NAME
from .progress import Progress

RESCUE_FOLDER = "hunyuan_i2v_rescued"


class VideoRescued(Exception):
    """The video was made but could not be written where asked; the message says where it went instead."""


class Renderer:
    def __init__(self, plan: checks.ModelPlan, args, workdir: Path, progress: Progress):
        self.plan, self.args, self.workdir, self.progress = plan, args, Path(workdir), progress
        self.model = self.vae = self.encoders = None
        self.sr_model = self.upsampler = None  # loaded with the first job that asks for --upscale
        # Under torchrun every process samples its share of each video; only the first encodes, decodes and
        # writes, so only it loads the VAE and the text encoders.
        self.ranks = getattr(args, "ranks", None)
        self.first = self.ranks is None or self.ranks.is_first
        self.device = self.ranks.device if self.ranks is not None else plan.device

    # ------------------------------------------------------------ models, once

    def load(self) -> None:
        if self.model is not None:
            return
        plan, args, say = self.plan, self.args, self.progress.say
        transformer, vae_path, sources = plan.transformer, plan.vae, plan.text_encoders
        if plan.demo:
            say(f"Building a tiny random {families.DISPLAY_NAMES[plan.family]} (demo mode: the video will be noise).")
            folder = families.family(plan.family).write_demo_folder(self.workdir / "tiny_demo")
            transformer = vae_path = folder
            sources = loading.TextEncoderSources(folder=folder)
        dtype = args.dtype
        with self.progress.stage("Loading models", total=3 + len(plan.loras), unit="part") as bar:
            bar.set_postfix_str("transformer")
            model = loading.load_model(transformer, dtype, args.fp8, args.attention, args.offload, self.device,
                                       variant=args.variant, compile_blocks=args.compile, ranks=self.ranks)
            bar.update()
            for path, strength in plan.loras:
                bar.set_postfix_str(f"LoRA {path.name}")
                model = loading.with_lora(model, path, strength)
                bar.update()
            if not self.first:
                self.model = model
                return
            bar.set_postfix_str("VAE")
            vae = loading.load_vae(vae_path, args.vae_dtype or dtype)
            bar.update()
            bar.set_postfix_str("text encoders")
            encoders = loading.load_text_encoders(sources, args.text_encoder_dtype or dtype, args.text_encoder_fp8,
                                                  args.text_encoder_device)
            bar.update()
            bar.set_postfix_str("")
        families.check_match([
            ("the transformer", model, ("transformer",)), ("the VAE", vae, ("vae",)),
            ("the text encoders", encoders, ("text_encoders",)),
        ])
        say(model.describe())
        self.model, self.vae, self.encoders = model, vae, encoders

    def load_super_resolution(self) -> None:
        """The SR transformer on every process (it samples like the base one) and the upsampler on the first."""
        if self.sr_model is not None:
            return
        from ..hunyuan_video_15 import upsampler as upsampler_module

        args, plan = self.args, self.plan
        with self.progress.stage("Loading super-resolution models", total=2, unit="part") as bar:
            bar.set_postfix_str("SR transformer")
            self.sr_model = loading.load_model(plan.sr_transformer, args.dtype, args.fp8, args.attention, args.offload,
                                               self.device, compile_blocks=args.compile, ranks=self.ranks)
            bar.update()
            if self.first:
                bar.set_postfix_str("latent upsampler")
                self.upsampler = upsampler_module.load_upsampler(plan.upsampler, plan.upsampler_kind)
            bar.update()
        self.progress.say(self.sr_model.describe())

    # ------------------------------------------------------------ one video

    def render(self, job: jobs.Job) -> Path | None:
        """Make the job's video and write it; returns the file written (None on the other ranks)."""
        start = time.perf_counter()
        self.load()
        frames = self.frames(job)
        if frames is None:
            return None
        out = self.save(frames, job.output, job.fps)
        self.progress.say(
            f"Wrote {out} ({frames.shape[0]} frames, {frames.shape[2]}x{frames.shape[1]}, {job.fps:g} fps) "
            f"in {time.perf_counter() - start:.1f} s"
        )
        return out

    def on_step(self, bar):
        def step(info):
            bar.update()
            if self.ranks is not None:
                ranks.injected_failure(self.ranks.rank, info.index)

        return step

    def encode(self, job: jobs.Job):
        image = jobs.start_image(job, self.plan.demo)
        with self.progress.stage("Encoding"):
            return stages.run_encode(self.encoders, self.vae, image, job.prompt, job.negative_prompt, job.resolution,
                                     job.width, job.height, self.device)

    def frames(self, job: jobs.Job) -> torch.Tensor | None:
        """The job's frames; None on every process but the first, which alone decodes."""
        device, say, stage = self.device, self.progress.say, self.progress.stage
        if self.ranks is None:
            cond = self.encode(job)
        else:
            cond = share(self.ranks, lambda: self.encode(job))
        for note in cond.notes:
            say(note)
        requested = SamplingSettings(
            seed=job.seed, steps=job.steps, num_frames=job.frames, flow_shift=job.flow_shift,
            embedded_guidance=job.guidance, cfg_scale=job.cfg_scale, i2v_stability=job.stability,
        )
        settings, notes = stages.resolve_settings(self.model, requested, cond)
        say(f"{cond.width}x{cond.height}, {settings.num_frames} frames, seed {settings.seed}: steps {settings.steps}, "
            f"shift {settings.flow_shift:g}, cfg {settings.cfg_scale:g}, embedded guidance "
            f"{settings.embedded_guidance:g}, cache {job.cache}")
        for note in notes:
            say(note)
        if job.cache == "off" and job.cache_threshold != PER_VIDEO_BY_NAME["cache_threshold"].default:
            say("cache threshold is ignored: the cache is off.")
        with stage("Sampling", total=settings.steps, unit="step") as bar:
            result = stages.run_sample(self.model, cond, requested, job.cache, job.cache_threshold, device,
                                       on_step=self.on_step(bar), free_memory=free_memory(device))
        for note in result.notes:
            if note not in notes:  # the memory plan, made once the sampler saw the free memory
                say(note)
        if job.upscale != "off":
            result = self.super_resolution(job, cond, result.latent)
        if not self.first:
            return None
        decode_notes: list[str] = []
        with stage("Decoding"):
            frames = stages.run_decode(self.vae, result.latent, job.tiling, job.tile_size, device,
                                       free_memory=free_memory(device), notes=decode_notes)
        for note in decode_notes:
            say(note)
        return frames

    def super_resolution(self, job: jobs.Job, cond, latent: dict):
        """The base latent -> the SR stage's result (HunyuanVideo-1.5 at 720p or 1080p), with the SR defaults."""
        self.load_super_resolution()
        device, say, stage = self.device, self.progress.say, self.progress.stage

        def prepare():
            with stage(f"Preparing {job.upscale} super-resolution"):
                return stages.run_super_resolution(
                    cond, latent, self.upsampler, self.vae, jobs.start_image(job, self.plan.demo), job.upscale,
                    job.sr_width, job.sr_height, noise_augmentation=job.sr_noise_augmentation, encoders=self.encoders, device=device,
                )

        sr_cond = prepare() if self.ranks is None else share(self.ranks, prepare)
        for note in sr_cond.notes[len(cond.notes):]:
            say(note)
        requested = SamplingSettings(seed=job.seed, steps=0, num_frames=sr_cond.num_frames, flow_shift=0.0,
                                     embedded_guidance=0.0, cfg_scale=0.0, i2v_stability=False)
        settings, notes = stages.resolve_settings(self.sr_model, requested, sr_cond)
        say(f"Super-resolution {sr_cond.width}x{sr_cond.height}: steps {settings.steps}, shift "
            f"{settings.flow_shift:g}, cfg {settings.cfg_scale:g}")
        with stage("Super-resolution sampling", total=settings.steps, unit="step") as bar:
            result = stages.run_sample(self.sr_model, sr_cond, requested, "off", 0.1, device,
                                       on_step=self.on_step(bar), free_memory=free_memory(device))
        for note in result.notes:
            if note not in notes and "i2v_stability" not in note:
                say(note)
        return result

    # ------------------------------------------------------------ the file

    def save(self, frames: torch.Tensor, output: Path, fps: float) -> Path:
        with self.progress.stage("Writing MP4", total=frames.shape[0], unit="frame") as bar:
            try:
                return write_whole(frames, output, fps, bar.update)
            except Exception as exc:  # noqa: BLE001 - whatever went wrong, the frames must still reach a disk
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        rescued = rescue(frames, output, fps)
        raise VideoRescued(
            f"Could not write '{output}' ({reason}); the video was saved to '{rescued}' instead. Move it where you "
            "want it, and check that the output folder exists and has free space."
        )


def free_memory(device: torch.device) -> int | None:
    """Bytes free on a CUDA device, for the memory plan (offload and tile size "auto"); None elsewhere."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return None


def write_whole(frames: torch.Tensor, output: Path, fps: float, on_frame=None) -> Path:
    """Write under a temporary name and rename: ``output`` appears only whole (batch skips existing files)."""
    output = Path(output)
    partial = output.with_name(f".{output.name}.partial")
    try:
        video.write_mp4(frames, partial, fps, on_frame=on_frame)
        os.replace(partial, output)
    finally:
        if partial.exists():
            partial.unlink()
    return output


def rescue_folders() -> list[Path]:
    return [Path.home() / RESCUE_FOLDER, Path(tempfile.gettempdir()) / RESCUE_FOLDER, Path.cwd()]


def rescue(frames: torch.Tensor, output: Path, fps: float) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    errors = []
    for folder in rescue_folders():
        target = folder / f"{Path(output).stem}-{stamp}.mp4"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return write_whole(frames, target, fps)
        except Exception as exc:  # noqa: BLE001 - try the next folder
            errors.append(f"{folder}: {exc}")
    raise UserInputError(
        f"Could not write '{output}', nor a copy in any rescue folder ({'; '.join(errors)}). Free some disk space."
    )
