"""Command line: the same local path as the nodes, from a models folder to an MP4.

    python -m hunyuan_i2v generate --image in.png --prompt "..." --output out.mp4 --models ~/ComfyUI/models
    python -m hunyuan_i2v generate --demo --output demo.mp4      # tiny random model: output is noise
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import families, loading, stages
from .errors import UserInputError
from .hunyuan_video_13b.conditioning import DEFAULT_NEGATIVE_PROMPT
from .shared import acceleration, video
from .shared.sampling import SamplingSettings, StepInfo, check_frames


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hunyuan_i2v", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="image + prompt -> MP4")
    gen.add_argument("--image", help="start image (PNG/JPEG/WebP); --demo makes one if omitted")
    gen.add_argument("--prompt", default="a cat walks on the grass")
    gen.add_argument("--negative-prompt", default=DEFAULT_NEGATIVE_PROMPT, help="used when CFG is above 1 (default: %(default)s)")
    gen.add_argument("--output", required=True, help="MP4 file to write")
    gen.add_argument("--models", default=os.environ.get("HUNYUAN_I2V_MODELS"),
                     help="ComfyUI-style models folder (diffusers/, diffusion_models/, vae/, ...; default: $HUNYUAN_I2V_MODELS)")
    gen.add_argument("--diffusers", help="diffusers folder of either model (name inside MODELS/diffusers, or a path); gives text encoders, and the transformer/VAE unless set below")
    gen.add_argument("--transformer", help="transformer .safetensors of either model (name inside MODELS/diffusion_models, or a path)")
    gen.add_argument("--vae", help="VAE .safetensors (name inside MODELS/vae, or a path)")
    gen.add_argument("--mllm", help="instead of --diffusers: qwen_2.5_vl_7b (1.5) or llava_llama3 (13 B) file (MODELS/text_encoders, or a path)")
    gen.add_argument("--vision", help="with --mllm: sigclip_vision_patch14_384 (1.5) or llava_llama3_vision (13 B) file (MODELS/clip_vision)")
    gen.add_argument("--clip", "--text-encoder-2", dest="clip", help="with --mllm: byt5_small_glyphxl (1.5) or clip_l (13 B) file (MODELS/text_encoders)")
    gen.add_argument("--comfyui", help="with --mllm: a ComfyUI folder, whose bundled tokenizers are used")
    gen.add_argument("--tokenizers", action="append", default=[], metavar="FOLDER",
                     help="with --mllm: a diffusers folder of the same model to take tokenizers from (repeatable)")
    gen.add_argument("--lora", action="append", default=[], metavar="FILE[:STRENGTH]",
                     help="LoRA file (MODELS/loras or a path), strength 1 by default; repeat for several")
    gen.add_argument("--demo", action="store_true", help="build a tiny random model on the spot (output is noise)")
    gen.add_argument("--demo-family", default=families.HUNYUAN_VIDEO_15, choices=list(families.NAMES),
                     help="with --demo: which model family to build (default: %(default)s)")
    gen.add_argument("--resolution", default="720p", choices=["720p", "540p", "480p", "360p"],
                     help="1.5: 480p or 720p; 13 B: 360p, 540p or 720p (default: %(default)s)")
    gen.add_argument("--width", type=int, default=0)
    gen.add_argument("--height", type=int, default=0)
    gen.add_argument("--frames", type=int, default=121, help="4n+1 (default: %(default)s; the 13 B reference uses 129)")
    gen.add_argument("--steps", type=int, default=0, help="0 = the model's default (default: %(default)s)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--flow-shift", type=float, default=0.0, help="0 = the model's default (default: %(default)s)")
    gen.add_argument("--guidance", type=float, default=0.0, help="embedded guidance (13 B v2); 0 = 6.0")
    gen.add_argument("--cfg-scale", type=float, default=0.0, help="CFG with the negative prompt; 0 = the model's default, 1 = off")
    gen.add_argument("--variant", default="auto", choices=list(loading.VARIANT_CHOICES),
                     help="what a 1.5 file cannot tell: distillation (default: %(default)s)")
    gen.add_argument("--no-stability", action="store_true", help="turn i2v stability off")
    gen.add_argument("--dtype", default="bf16", choices=list(acceleration.DTYPES))
    gen.add_argument("--fp8", action="store_true", help="store transformer weights in fp8")
    gen.add_argument("--offload", default="model", choices=list(acceleration.OFFLOAD_MODES))
    gen.add_argument("--cache", default="off", choices=list(acceleration.CACHE_MODES))
    gen.add_argument("--cache-threshold", type=float, default=0.1)
    gen.add_argument("--fps", type=float, default=24.0)
    gen.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    return parser


def _find(models: Path | None, kind: str, name: str) -> Path:
    path = Path(name).expanduser()
    if path.exists():
        return path
    if models is not None and (models / kind / name).exists():
        return models / kind / name
    raise UserInputError(f"'{name}' was found neither as a path nor in {models or '(no --models)'}/{kind}.")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _text_encoder_sources(args, models: Path | None, folder: Path | None) -> loading.TextEncoderSources:
    """The same choice the Load Text Encoders node makes: a diffusers folder, or three single files."""
    if not args.mllm:
        return loading.TextEncoderSources(folder=folder)
    tokenizer_folders = [Path(f).expanduser() for f in args.tokenizers] + ([folder] if folder else [])
    if models is not None and (models / "diffusers").is_dir():
        tokenizer_folders += sorted(p.parent for p in (models / "diffusers").rglob("model_index.json"))
    return loading.TextEncoderSources(
        primary=_find(models, "text_encoders", args.mllm),
        vision=_find(models, "clip_vision", args.vision) if args.vision else None,
        second=_find(models, "text_encoders", args.clip) if args.clip else None,
        comfy_package=Path(args.comfyui).expanduser() / "comfy" if args.comfyui else None,
        diffusers_folders=tokenizer_folders,
    )


def _load_image(args, workdir: Path) -> torch.Tensor:
    from PIL import Image

    if args.image:
        try:
            pil = Image.open(args.image)
            pil.load()
        except OSError as exc:
            raise UserInputError(f"Cannot read image '{args.image}': {exc}") from exc
        mode = "RGBA" if pil.mode in ("RGBA", "LA", "P") else "RGB"
        array = np.asarray(pil.convert(mode)).astype(np.float32) / 255.0
        return torch.from_numpy(array).unsqueeze(0)
    if not args.demo:
        raise UserInputError("--image is required (or use --demo).")
    gradient = np.linspace(0, 1, 96, dtype=np.float32)
    array = np.stack(np.broadcast_arrays(gradient[None, :], gradient[:, None], 0.5 * np.ones((96, 96))), -1)
    return torch.from_numpy(array.astype(np.float32)).unsqueeze(0)


def generate(args) -> Path:
    device = torch.device(args.device) if args.device else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    )
    workdir = Path(tempfile.mkdtemp(prefix="hunyuan_i2v_"))
    models = Path(args.models).expanduser() if args.models else None
    if args.demo:
        print(f"Building a tiny random {families.DISPLAY_NAMES[args.demo_family]} (demo mode: the video will be "
              "noise).", file=sys.stderr)
        folder = families.family(args.demo_family).write_demo_folder(workdir / "tiny_demo")
        if not (args.width or args.height):
            args.width, args.height = 64, 64
        if args.frames in (121, 129):
            args.frames = 17
        if args.steps == 0:
            args.steps = 4
        dtype_name = "fp32"
    else:
        if not args.diffusers and not args.mllm:
            raise UserInputError("Give --diffusers (a HunyuanVideo diffusers folder) or --mllm/--vision/--clip.")
        folder = _find(models, "diffusers", args.diffusers) if args.diffusers else None
        if folder is None and not (args.transformer and args.vae):
            raise UserInputError("Without --diffusers, give --transformer and --vae too.")
        dtype_name = args.dtype
    image = _load_image(args, workdir)  # before loading gigabytes: a bad path should fail at once
    check_frames(args.frames)
    t0 = time.perf_counter()
    transformer_path = _find(models, "diffusion_models", args.transformer) if args.transformer else folder
    vae_path = _find(models, "vae", args.vae) if args.vae else folder
    model = loading.load_model(
        transformer_path, dtype_name, args.fp8, "native (PyTorch SDPA)", args.offload, device, variant=args.variant
    )
    for item in args.lora:
        name, _, strength = item.rpartition(":") if ":" in item and _is_number(item.rpartition(":")[2]) else (item, "", "1")
        model = loading.with_lora(model, _find(models, "loras", name), float(strength))
    print(model.describe(), file=sys.stderr)
    vae = loading.load_vae(vae_path, dtype_name)
    encoders = loading.load_text_encoders(_text_encoder_sources(args, models, folder), dtype_name)
    families.check_match([
        ("the transformer", model, ("transformer",)), ("the VAE", vae, ("vae",)),
        ("the text encoders", encoders, ("text_encoders",)),
    ])
    cond = stages.run_encode(
        encoders, vae, image, args.prompt, args.negative_prompt, args.resolution, args.width, args.height, device
    )
    requested = SamplingSettings(
        seed=args.seed, steps=args.steps, num_frames=args.frames, flow_shift=args.flow_shift,
        embedded_guidance=args.guidance, cfg_scale=args.cfg_scale, i2v_stability=not args.no_stability,
    )

    def report(info: StepInfo) -> None:
        print(f"step {info.index + 1}/{info.total}", file=sys.stderr)

    result = stages.run_sample(model, cond, requested, args.cache, args.cache_threshold, device, on_step=report)
    for note in cond.notes + result.notes:
        print(note, file=sys.stderr)
    frames = stages.run_decode(vae, result.latent, device=device)
    out = video.write_mp4(frames, args.output, args.fps)
    print(
        f"Wrote {out} ({frames.shape[0]} frames, {frames.shape[2]}x{frames.shape[1]}) "
        f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        generate(args)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
