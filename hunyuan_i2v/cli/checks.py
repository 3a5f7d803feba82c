"""Everything the command line can check before it loads a model: options, files, device, output paths.

Loading takes minutes for the real models and sampling longer; a wrong path
or an impossible setting must be found before either, in one sentence.
Model files are checked by their headers only (no tensor is read).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch

from .. import families, loading
from ..errors import ModelFileError, UserInputError
from ..shared import acceleration, files, kernels
from . import options

# Which tokenizers each family's single-file text encoders need (shared/tokenizers.py kinds).
TOKENIZERS_NEEDED = {families.HUNYUAN_VIDEO_13B: ("llama", "clip"), families.HUNYUAN_VIDEO_15: ("qwen25",)}
DEVICE_TYPES = "cpu, cuda, cuda:N, mps or xpu"


@dataclass
class ModelPlan:
    """What will be loaded, resolved and checked; nothing loaded yet."""

    family: str
    device: torch.device
    demo: bool = False
    transformer: Path | None = None
    vae: Path | None = None
    text_encoders: loading.TextEncoderSources | None = None
    loras: list[tuple[Path, float]] = field(default_factory=list)
    sr_transformer: Path | None = None  # HunyuanVideo-1.5 super-resolution, for jobs with --upscale
    sr_release: str | None = None  # what the SR file's header says: 720p, 1080p or None
    upsampler: Path | None = None
    upsampler_kind: str | None = None  # 720p or 1080p, from the upsampler's keys


# ---------------------------------------------------------------- the command line as a whole

def check_combinations(args, given: set[str]) -> None:
    """Options that do nothing together are refused rather than silently ignored."""
    if args.demo:
        conflicting = [o for o in options.MODEL_FILE_OPTIONS if o in given]
        if conflicting:
            names = ", ".join("--" + o.replace("_", "-") for o in conflicting)
            raise UserInputError(
                f"--demo builds a tiny random model, so {names} would not be used. Leave {names} out, or drop --demo "
                "to run your model files."
            )
    elif bool(args.sr_transformer) != bool(args.upsampler):
        missing = "--upsampler" if args.sr_transformer else "--sr-transformer"
        raise UserInputError(f"Super-resolution needs both --sr-transformer and --upsampler; give {missing} too.")
    elif "demo_family" in given:
        raise UserInputError("--demo-family only applies with --demo; add --demo, or leave --demo-family out.")
    if not args.mllm:
        stray = [o for o in options.TEXT_ENCODER_FILE_OPTIONS if o in given]
        if stray:
            names = ", ".join("--" + o for o in stray)
            raise UserInputError(
                f"{names} only {'applies' if len(stray) == 1 else 'apply'} with --mllm (single-file text encoders). Add --mllm with the language model "
                "file, or leave them out."
            )
    elif not (args.vision and args.clip):
        missing = " and ".join(o for o, v in (("--vision", args.vision), ("--clip", args.clip)) if not v)
        raise UserInputError(
            f"--mllm needs {missing} too: 1.5 takes sigclip_vision_patch14_384 and byt5_small_glyphxl, 13 B takes "
            "llava_llama3_vision and clip_l."
        )


def apply_demo_defaults(args, given: set[str]) -> None:
    """--demo's small sizes for what the user left out; what the user gave is kept."""
    if not args.demo:
        return
    for name, value in options.DEMO_DEFAULTS.items():
        if name in ("width", "height"):
            if not given & {"width", "height", "resolution"}:
                setattr(args, name, value)
        elif name not in given:
            setattr(args, name, value)


def parse_device(text: str | None) -> torch.device:
    if text is None:
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise UserInputError(f"--device '{text}' is not a device name: use {DEVICE_TYPES}.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = (f"this PyTorch ({torch.__version__}) is built without CUDA" if torch.version.cuda is None
                   else "no NVIDIA GPU is visible (check the driver and CUDA_VISIBLE_DEVICES)")
            raise UserInputError(
                f"--device {text}: CUDA is not available, {why}. Use --device cpu, or install PyTorch's CUDA build."
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UserInputError(f"--device {text}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}.")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UserInputError(f"--device {text}: Apple's MPS is not available here. Use --device cpu.")
    elif device.type == "xpu":
        if not (hasattr(torch, "xpu") and torch.xpu.is_available()):
            raise UserInputError(f"--device {text}: no Intel XPU is available here. Use --device cpu.")
    elif device.type != "cpu":
        raise UserInputError(f"--device '{text}' is not a device this pack runs on: use {DEVICE_TYPES}.")
    return device


def check_model_options(args, family: str, device: torch.device | None = None) -> None:
    """Options that need a package or feature this machine may lack: the loader's own checks, before loading."""
    device = device or torch.device("cpu")
    if (args.fp8 or args.text_encoder_fp8) and not hasattr(torch, "float8_e4m3fn"):
        raise UserInputError("This PyTorch has no float8 support; leave out --fp8/--text-encoder-fp8 or update PyTorch.")
    if args.fp8 or args.text_encoder_fp8:
        kernels.check_fp8_device(device)
    if getattr(args, "compile", False):
        kernels.check_compile(device)
    dtype = acceleration.DTYPES.get(getattr(args, "dtype", None) or "bf16", torch.bfloat16)
    acceleration.usable_attention_backend(args.attention, family, device, dtype)


# ---------------------------------------------------------------- model files

def find(models: Path | None, kind: str, name: str, option: str) -> Path:
    """A file or folder named on the command line: a path, or a name inside MODELS/<kind>."""
    path = Path(name).expanduser()
    if path.exists():
        return path
    if models is not None and (models / kind / name).exists():
        return models / kind / name
    if models is None:
        raise UserInputError(
            f"{option} '{name}' does not exist, and no models folder was given to look in: give a path, or "
            f"--models (or ${options.MODELS_ENV}) with a {kind}/ folder holding it."
        )
    folder = models / kind
    if not folder.is_dir():
        where = f"--models '{models}'" + (" (from $" + options.MODELS_ENV + ")" if _from_env(models) else "")
        raise UserInputError(f"{option} '{name}' is not a path, and {where} has no {kind}/ folder to look in.")
    present = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))[:6]
    listing = f" It holds: {', '.join(present)}." if present else f" {folder} is empty."
    raise UserInputError(f"{option} '{name}' was found neither as a path nor in {folder}.{listing}")


def _from_env(models: Path) -> bool:
    env = os.environ.get(options.MODELS_ENV)
    return bool(env) and Path(env).expanduser() == models


def plan_models(args) -> ModelPlan:
    """Resolve and check every model file by its header, and the tokenizers, without loading any weights."""
    device = parse_device(args.device)
    if args.demo:
        check_model_options(args, args.demo_family, device)
        return ModelPlan(args.demo_family, device, demo=True)
    if not args.diffusers and not args.mllm:
        raise UserInputError("Give the model: --diffusers FOLDER, or --transformer, --vae and --mllm/--vision/--clip "
                             "files (or --demo to try the path on a tiny random model).")
    models = Path(args.models).expanduser() if args.models else None
    folder = find(models, "diffusers", args.diffusers, "--diffusers") if args.diffusers else None
    if folder is None and not (args.transformer and args.vae):
        missing = " and ".join(o for o, v in (("--transformer", args.transformer), ("--vae", args.vae)) if not v)
        raise UserInputError(f"Without --diffusers, give {missing} too.")
    if folder is not None:
        if not folder.is_dir():
            raise UserInputError(f"--diffusers '{folder}' is a file; give the diffusers folder (with model_index.json).")
        families.of_folder(folder)  # an image-to-video folder of either family, or a sentence saying what it is
    transformer = find(models, "diffusion_models", args.transformer, "--transformer") if args.transformer else folder
    vae = find(models, "vae", args.vae, "--vae") if args.vae else folder
    # The loaders' own checks, run now: each file holds the part its option names, by its header.
    parts = [
        ("the transformer", loading.family_for_slot(transformer, "transformer", "the transformer", "diffusion_models"),
         ("transformer",)),
        ("the VAE", loading.family_for_slot(vae, "vae", "the VAE", "vae"), ("vae",)),
    ]
    sources = _text_encoder_sources(args, models, folder)
    parts.append(("the text encoders", _text_encoder_family(sources), ("text_encoders",)))
    families.check_match([(what, SimpleNamespace(family=name), slots) for what, name, slots in parts])
    family = parts[0][1]
    if family == families.HUNYUAN_VIDEO_15 and transformer.is_file():
        from ..hunyuan_video_15 import transformer as transformer_15

        if transformer_15.release_from_header(transformer)[0] == "sr":
            raise UserInputError(f"--transformer '{transformer.name}' is a super-resolution release: give it as "
                                 "--sr-transformer (with --upscale and --upsampler), and an hunyuanvideo1.5_*_i2v_* "
                                 "file as --transformer.")
    loras = [_lora(models, item) for item in args.lora]
    check_model_options(args, family, device)
    plan = ModelPlan(family, device, transformer=transformer, vae=vae, text_encoders=sources, loras=loras)
    _plan_super_resolution(args, models, plan)
    return plan


def _plan_super_resolution(args, models: Path | None, plan: ModelPlan) -> None:
    """--sr-transformer and --upsampler, checked by their headers: a 1.5 SR transformer and a latent upsampler."""
    from ..hunyuan_video_15 import transformer as transformer_15, upsampler as upsampler_15

    if not (args.sr_transformer or args.upsampler):
        return
    if plan.family != families.HUNYUAN_VIDEO_15:
        raise UserInputError("--sr-transformer and --upsampler belong to HunyuanVideo-1.5's super-resolution; the "
                             "13 B model has none. Leave them out, or run a 1.5 model.")
    path = find(models, "diffusion_models", args.sr_transformer, "--sr-transformer")
    name = loading.family_for_slot(path, "transformer", "--sr-transformer", "diffusion_models")
    if path.is_dir() or name != families.HUNYUAN_VIDEO_15:
        raise UserInputError(f"--sr-transformer '{path.name}' is not a HunyuanVideo-1.5 super-resolution file: use "
                             "hunyuanvideo1.5_720p_sr_distilled or hunyuanvideo1.5_1080p_sr_distilled.")
    task, plan.sr_release = transformer_15.release_from_header(path)
    if task != "sr":
        raise UserInputError(f"--sr-transformer '{path.name}' is an image-to-video release (65 input channels), not "
                             "a super-resolution one (98): use hunyuanvideo1.5_*_sr_distilled_* there, and give this "
                             "file as --transformer.")
    plan.sr_transformer = path
    plan.upsampler = find(models, "latent_upscale_models", args.upsampler, "--upsampler")
    if plan.upsampler.is_dir():  # Tencent's release folder: small, so read it whole
        plan.upsampler_kind = upsampler_15.load_upsampler(plan.upsampler).kind
        return
    keys = files.tensor_keys(plan.upsampler)
    prefix = files.strip_prefix(keys)
    plan.upsampler_kind = upsampler_15.detect_kind(k[len(prefix):] for k in keys)
    if plan.upsampler_kind is None:
        raise files.wrong_role_error(plan.upsampler, files.detect_role(keys), "a HunyuanVideo-1.5 latent upsampler",
                                     "latent_upscale_models")


def check_upscale(upscale: str, plan: ModelPlan, where: str = "--upscale") -> None:
    """A job's --upscale against the loaded plan: the SR files are given and of the right resolution."""
    if upscale == "off":
        return
    if plan.demo:
        raise UserInputError(f"{where} {upscale} needs real super-resolution files; --demo builds none. Drop --demo "
                             "and give --sr-transformer and --upsampler, or leave --upscale off.")
    if plan.sr_transformer is None:
        raise UserInputError(f"{where} {upscale} needs --sr-transformer (hunyuanvideo1.5_{upscale}_sr_distilled) and "
                             f"--upsampler (hunyuanvideo15_latent_upsampler_{upscale}).")
    if plan.upsampler_kind != upscale:
        raise UserInputError(f"{where} {upscale}: --upsampler '{plan.upsampler.name}' is the {plan.upsampler_kind} "
                             f"latent upsampler; use hunyuanvideo15_latent_upsampler_{upscale}.")
    if plan.sr_release and plan.sr_release != upscale:
        raise UserInputError(f"{where} {upscale}: --sr-transformer '{plan.sr_transformer.name}' is the "
                             f"{plan.sr_release} super-resolution release; use hunyuanvideo1.5_{upscale}_sr_distilled.")


def _text_encoder_sources(args, models: Path | None, folder: Path | None) -> loading.TextEncoderSources:
    """The same choice the Load Text Encoders node makes: a diffusers folder, or three single files."""
    if not args.mllm:
        return loading.TextEncoderSources(folder=folder)
    tokenizer_folders = []
    for name in args.tokenizers:
        path = Path(name).expanduser()
        if not path.is_dir():
            raise UserInputError(f"--tokenizers '{name}' is not a folder; give a diffusers folder of the same model.")
        tokenizer_folders.append(path)
    tokenizer_folders += [folder] if folder else []
    if models is not None and (models / "diffusers").is_dir():
        tokenizer_folders += sorted(p.parent for p in (models / "diffusers").rglob("model_index.json"))
    comfy_package = None
    if args.comfyui:
        comfy_package = Path(args.comfyui).expanduser() / "comfy"
        if not comfy_package.is_dir():
            raise UserInputError(f"--comfyui '{args.comfyui}' is not a ComfyUI folder (it has no comfy/ inside).")
    return loading.TextEncoderSources(
        primary=find(models, "text_encoders", args.mllm, "--mllm"),
        vision=find(models, "clip_vision", args.vision, "--vision"),
        second=find(models, "text_encoders", args.clip, "--clip"),
        comfy_package=comfy_package, diffusers_folders=tokenizer_folders,
    )


def _text_encoder_family(sources: loading.TextEncoderSources) -> str:
    if sources.folder is not None:
        return families.of_folder(sources.folder)
    name = loading.family_for_slot(sources.primary, "text_encoders", "the language model", "text_encoders")
    fam = families.family(name)
    for slot, path, folder in (("vision", sources.vision, "clip_vision"), ("text_encoder_2", sources.second,
                                                                         "text_encoders")):
        other, other_slot, role = families.of_file(path)
        if (other, other_slot) != (name, slot):
            raise files.wrong_role_error(path, role, f"{fam.TEXT_ENCODER_SLOTS[slot]} for {fam.DISPLAY_NAME}", folder)
    for kind in TOKENIZERS_NEEDED[name]:
        sources.tokenizer(kind)  # raises with where it looked and where to put one
    return name


def _lora(models: Path | None, item: str) -> tuple[Path, float]:
    name, strength = item, 1.0
    head, sep, tail = item.rpartition(":")
    if sep and head and not Path(item).expanduser().exists():
        try:
            strength = float(tail)
        except ValueError:
            pass  # a colon inside the name (a Windows drive): no strength given
        else:
            name = head
    low, high = options.LORA_STRENGTH_RANGE
    if not low <= strength <= high:
        raise UserInputError(f"--lora {item}: strength must be between {low:g} and {high:g}, got {strength:g}.")
    path = find(models, "loras", name, "--lora")
    try:
        files.check_safetensors(path)
    except ModelFileError as exc:
        raise UserInputError(f"--lora: {exc}") from None
    return path, strength


# ---------------------------------------------------------------- outputs

def check_output(path: Path, option: str = "--output") -> Path:
    """An MP4 path that can be written: checked now, so a finished video is not lost to a typo."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserInputError(f"{option} '{path}' is a folder; name the video file inside it, e.g. '{path / 'video.mp4'}'.")
    suffix = path.suffix.lower()
    if not suffix:
        raise UserInputError(f"{option} '{path}' has no extension; the video is an MP4, so name it '{path}.mp4'.")
    if suffix != ".mp4":
        raise UserInputError(
            f"{option} '{path}' ends in '{path.suffix}', but the command line writes MP4 video (H.264); name it "
            f"'{path.with_suffix('.mp4')}'."
        )
    if path.exists() and not path.is_file():
        raise UserInputError(f"{option} '{path}' exists and is not a regular file; pick another name.")
    check_folder_writable(path.parent, option, path)
    return path


def check_folder_writable(folder: Path, option: str, target: Path | None = None) -> None:
    """``folder`` exists and takes new files, or can be created; tried for real (permission bits lie to root)."""
    folder = Path(os.path.abspath(folder))
    existing = folder
    while not existing.exists():
        existing = existing.parent
    what = f"'{target}'" if target is not None else f"'{folder}'"
    if not existing.is_dir():
        raise UserInputError(
            f"{option} {what} cannot be created: '{existing}' is a file, not a folder. Pick another folder."
        )
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".hunyuan_i2v_write_test_")
    except OSError as exc:
        raise UserInputError(
            f"{option} {what} cannot be written: '{existing}' does not take new files ({exc.strerror}). Pick a folder "
            "you can write to."
        ) from None
    os.close(handle)
    os.unlink(probe)
