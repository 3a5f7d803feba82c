"""The command line's settings: the nodes' settings, with the same defaults and ranges and help for each.

Per-video settings (``PER_VIDEO``) can also be set per line of a batch file;
they are parsed by the same functions there, so a value refused on the
command line is refused in a jobs file with the same sentence.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

from .. import __version__, families, loading
from ..hunyuan_video_13b.conditioning import DEFAULT_NEGATIVE_PROMPT
from ..shared import acceleration, images, sampling, video
from ..hunyuan_video_15.defaults import SR_NOISE_AUGMENTATION, SR_RESOLUTIONS
from ..shared.sampling import check_frames
from . import download

MODELS_ENV = "HUNYUAN_I2V_MODELS"
RESOLUTIONS = ["720p", "540p", "480p", "360p"]  # 1.5 has 480p and 720p; 13 B 360p, 540p and 720p
SIZE_GRID = 16  # both families' grid for explicit sizes
TILE_SIZE_RANGE = (0, 1024)  # the Decode node's tile_size widget; 0 = auto, from the free GPU memory
LORA_STRENGTH_RANGE = (-10.0, 10.0)  # the LoRA node's strength widget
TEXT_ENCODER_DEVICES = ["gpu", "cpu"]
UPSCALE_CHOICES = ["off", *SR_RESOLUTIONS]

# What --demo uses for the settings the user did not give: a tiny model makes noise, so small and quick.
DEMO_DEFAULTS = {"width": 64, "height": 64, "frames": 17, "steps": 4, "dtype": "fp32"}


class SettingError(ValueError):
    """A value outside what a setting accepts; the message is the sentence the user reads."""


def _number(kind: type, text: Any, name: str):
    if isinstance(text, bool):  # JSON true/false is not a number here
        raise SettingError(f"{name} must be a number, got {text!r}.")
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise SettingError(f"{name} must be {'a whole number' if kind is int else 'a number'}, got {text!r}.") from None


def ranged(kind: type, low, high, name: str, zero: str = "") -> Callable[[Any], Any]:
    """A parser for a number between ``low`` and ``high``; ``zero`` says what 0 means, for the message."""

    def parse(text):
        value = _number(kind, text, name)
        if not low <= value <= high:  # NaN fails this too
            meaning = f" ({zero})" if zero else ""
            raise SettingError(f"{name} must be between {_shown(low)} and {_shown(high)}{meaning}, got {text}.")
        return value

    return parse


def _shown(number) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def _size(name: str) -> Callable[[Any], int]:
    limit = ranged(int, 0, images.MAX_SIDE, name, "0 = from the resolution and the image")

    def parse(text):
        value = limit(text)
        if value % SIZE_GRID:
            lower = max(SIZE_GRID, value // SIZE_GRID * SIZE_GRID)
            raise SettingError(
                f"{name} {value} is not a multiple of {SIZE_GRID} (the model's grid). Use {lower} or "
                f"{min(lower + SIZE_GRID, images.MAX_SIDE)}, or 0 to size the video from the image."
            )
        return value

    return parse


def _frames(text) -> int:
    value = ranged(int, *sampling.FRAMES_RANGE, "frames")(text)
    try:
        check_frames(value)
    except ValueError as exc:
        raise SettingError(str(exc)) from None
    return value


def _tile_size(text) -> int:
    return ranged(int, *TILE_SIZE_RANGE, "tile size", "0 = auto")(text)


def choice(options: list[str], name: str) -> Callable[[Any], str]:
    def parse(text):
        if text not in options:
            raise SettingError(f"{name} must be one of {', '.join(repr(o) for o in options)}, got {text!r}.")
        return text

    return parse


def flag(name: str) -> Callable[[Any], bool]:
    def parse(text):
        if isinstance(text, bool):
            return text
        lowered = str(text).strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingError(f"{name} must be true or false, got {text!r}.")

    return parse


def text(value) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Setting:
    """One per-video setting: its name in a jobs file, its command-line flags, parser, default and help."""

    name: str
    flags: tuple[str, ...]
    parse: Callable[[Any], Any]
    default: Any
    help: str
    aliases: tuple[str, ...] = ()  # other names a jobs file may use (the nodes' widget names)

    @property
    def is_flag(self) -> bool:
        return isinstance(self.default, bool)


_CACHE_MODES = list(acceleration.CACHE_MODES)
PER_VIDEO = [
    Setting("prompt", ("--prompt",), text, "", "what happens in the video; 1.5 writes text in \"double quotes\""),
    Setting("negative_prompt", ("--negative-prompt",), text, DEFAULT_NEGATIVE_PROMPT,
            "used when CFG is above 1 (default: the Encode node's)"),
    Setting("resolution", ("--resolution",), choice(RESOLUTIONS, "resolution"), "720p",
            "video size from the image's aspect ratio: 1.5 480p or 720p (the release's), 13 B 360p, 540p or 720p; "
            "ignored when --width and --height are set"),
    Setting("width", ("--width",), _size("width"), 0,
            f"0 = from --resolution, else a multiple of {SIZE_GRID} up to {images.MAX_SIDE}"),
    Setting("height", ("--height",), _size("height"), 0,
            f"0 = from --resolution, else a multiple of {SIZE_GRID} up to {images.MAX_SIDE}"),
    Setting("frames", ("--frames",), _frames, 121,
            f"4n+1 up to {sampling.FRAMES_RANGE[1]}; 121 for 1.5, 129 for 13 B, at 24 fps"),
    Setting("steps", ("--steps",), ranged(int, *sampling.STEPS_RANGE, "steps", "0 = the model's default"), 0,
            f"0 = the model's default (50; 8 for 1.5 step-distilled); up to {sampling.STEPS_RANGE[1]}"),
    Setting("seed", ("--seed",), ranged(int, *sampling.SEED_RANGE, "seed"), 0,
            f"0 to {sampling.MAX_SEED}; the noise is made on the CPU, so a seed starts from the same noise anywhere"),
    Setting("flow_shift", ("--flow-shift",),
            ranged(float, *sampling.FLOW_SHIFT_RANGE, "flow shift", "0 = the model's default"), 0.0,
            f"0 = the model's default (1.5: 5 at 480p, 7 at 720p; 13 B: 7, 17 without stability); "
            f"up to {sampling.FLOW_SHIFT_RANGE[1]:g}"),
    Setting("guidance", ("--guidance", "--embedded-guidance"),
            ranged(float, *sampling.GUIDANCE_RANGE, "embedded guidance", "0 = the model's default"), 0.0,
            f"embedded guidance, 13 B v2 only; 0 = 6; up to {sampling.GUIDANCE_RANGE[1]:g}",
            aliases=("embedded_guidance",)),
    Setting("cfg_scale", ("--cfg-scale",),
            ranged(float, *sampling.CFG_SCALE_RANGE, "cfg scale", "0 = the model's default"), 0.0,
            f"CFG with the negative prompt; 0 = the model's default (1.5 I2V: 6, distilled and 13 B: 1), "
            f"1 = off, above 1 doubles the work; up to {sampling.CFG_SCALE_RANGE[1]:g}"),
    Setting("stability", ("--stability",), flag("stability"), True,
            "13 B only: start from noise leaning 0.1% towards the image for steadier motion",
            aliases=("i2v_stability",)),
    Setting("cache", ("--cache",), choice(_CACHE_MODES, "cache"), "off",
            f"skip work on steps that change little ({', '.join(_CACHE_MODES)}): faster, slightly different video"),
    Setting("cache_threshold", ("--cache-threshold",),
            ranged(float, *acceleration.CACHE_THRESHOLD_RANGE, "cache threshold"), 0.1,
            "first block cache only: higher is faster and looser (0.05-0.15 is typical)"),
    Setting("tiling", ("--tiling",), flag("tiling"), True, "decode the VAE in tiles so memory stays flat"),
    Setting("tile_size", ("--tile-size",), _tile_size, 256,
            f"decode tile edge in pixels, up to {TILE_SIZE_RANGE[1]}; lower it if decode runs out of memory; 0 = "
            "auto: no tiles if the video fits the free GPU memory, else the largest tile that does"),
    Setting("fps", ("--fps",), ranged(float, *video.FPS_RANGE, "fps"), 24.0,
            f"frame rate of the MP4, {video.FPS_RANGE[0]:g} to {video.FPS_RANGE[1]:g} (both models are trained at 24)"),
    Setting("upscale", ("--upscale",), choice(UPSCALE_CHOICES, "upscale"), "off",
            "HunyuanVideo-1.5 super-resolution after the base video: 720p after a 480p base, 1080p after a 720p "
            "base (Tencent's sizes, e.g. 1280x720 -> 1904x1072); needs --sr-transformer and --upsampler"),
    Setting("sr_noise_augmentation", ("--sr-noise-augmentation",),
            ranged(float, 0.0, 1.0, "sr noise augmentation"), SR_NOISE_AUGMENTATION,
            "with --upscale: the share of noise mixed into the upsampled latent (Tencent: 0.7)",
            aliases=("noise_augmentation",)),
    Setting("sr_width", ("--sr-width",), _size("sr width"), 0,
            f"with --upscale: 0 = Tencent's size for the resolution, else a multiple of {SIZE_GRID} above the base"),
    Setting("sr_height", ("--sr-height",), _size("sr height"), 0,
            f"with --upscale: 0 = Tencent's size for the resolution, else a multiple of {SIZE_GRID} above the base"),
]
PER_VIDEO_BY_NAME = {s.name: s for s in PER_VIDEO}
JOB_KEYS = {key: s for s in PER_VIDEO for key in (s.name, *s.aliases)}

# Options that pick model files: --demo builds its own model, so none of them may come with it.
MODEL_FILE_OPTIONS = ("models", "diffusers", "transformer", "vae", "mllm", "vision", "clip", "comfyui", "tokenizers",
                      "lora", "sr_transformer", "upsampler")
TEXT_ENCODER_FILE_OPTIONS = ("vision", "clip", "comfyui", "tokenizers")  # only with --mllm


class Parser(argparse.ArgumentParser):
    """argparse that says what is wrong in one sentence, without the whole usage text."""

    def error(self, message: str):
        self.exit(2, f"error: {message}\nRun '{self.prog} --help' to see every setting.\n")


def _argparse_type(setting: Setting):
    def parse(value):
        try:
            return setting.parse(value)
        except SettingError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


class _OnOff(argparse.BooleanOptionalAction):
    """--x / --no-x with the help text as written (Python 3.10 appends its own default to it)."""

    def __init__(self, *args, help=None, **kwargs):
        super().__init__(*args, help=help, **kwargs)
        self.help = help


def _add_per_video(group) -> None:
    for setting in PER_VIDEO:
        help_text = setting.help.replace("%", "%%")
        if setting.is_flag:
            group.add_argument(*setting.flags, dest=setting.name, action=_OnOff, default=setting.default,
                               help=f"{help_text} (default: {'on' if setting.default else 'off'})")
            continue
        if "(default:" not in help_text:
            help_text += f" (default: {setting.default!r})" if isinstance(setting.default, str) else (
                f" (default: {setting.default:g})")
        group.add_argument(*setting.flags, dest=setting.name, type=_argparse_type(setting), default=setting.default,
                           metavar=setting.name.upper(), help=help_text)


def _add_models(parser) -> None:
    files = parser.add_argument_group("model files (names inside the models folder, or paths)")
    env = os.environ.get(MODELS_ENV)
    files.add_argument("--models", default=env, metavar="FOLDER",
                       help=f"ComfyUI-style models folder (diffusers/, diffusion_models/, vae/, text_encoders/, "
                            f"clip_vision/, loras/, latent_upscale_models/) (default: ${MODELS_ENV}, now {env or 'unset'})")
    files.add_argument("--diffusers", metavar="FOLDER",
                       help="diffusers folder of either model (in MODELS/diffusers, or a path): gives the text "
                            "encoders, and the transformer and VAE unless set below (default: none)")
    files.add_argument("--transformer", metavar="FILE",
                       help="transformer .safetensors of either model (MODELS/diffusion_models) (default: from --diffusers)")
    files.add_argument("--vae", metavar="FILE", help="VAE .safetensors (MODELS/vae) (default: from --diffusers)")
    files.add_argument("--mllm", metavar="FILE",
                       help="instead of --diffusers' text encoders: qwen_2.5_vl_7b (1.5) or llava_llama3 (13 B) "
                            "(MODELS/text_encoders) (default: none)")
    files.add_argument("--vision", metavar="FILE",
                       help="with --mllm: sigclip_vision_patch14_384 (1.5) or llava_llama3_vision (13 B) "
                            "(MODELS/clip_vision) (default: none)")
    files.add_argument("--clip", "--text-encoder-2", dest="clip", metavar="FILE",
                       help="with --mllm: byt5_small_glyphxl (1.5) or clip_l (13 B) (MODELS/text_encoders) "
                            "(default: none)")
    files.add_argument("--comfyui", metavar="FOLDER",
                       help="with --mllm: a ComfyUI folder, whose bundled tokenizers are used (default: none)")
    files.add_argument("--tokenizers", action="append", default=[], metavar="FOLDER",
                       help="with --mllm: a diffusers folder of the same model to take tokenizers from; repeatable "
                            "(default: the diffusers folders in MODELS)")
    files.add_argument("--lora", action="append", default=[], metavar="FILE[:STRENGTH]",
                       help=f"LoRA file (MODELS/loras); strength {LORA_STRENGTH_RANGE[0]:g} to "
                            f"{LORA_STRENGTH_RANGE[1]:g}, 1 if left out; repeat for several (default: none)")
    files.add_argument("--sr-transformer", metavar="FILE",
                       help="with --upscale: the 1.5 super-resolution transformer, hunyuanvideo1.5_{720p,1080p}_sr_"
                            "distilled (MODELS/diffusion_models) (default: none)")
    files.add_argument("--upsampler", metavar="FILE",
                       help="with --upscale: the latent upsampler of the same resolution, hunyuanvideo15_latent_"
                            "upsampler_{720p,1080p} (MODELS/latent_upscale_models) (default: none)")

    model = parser.add_argument_group("how the models run (the loader nodes' settings)")
    model.add_argument("--variant", default="auto", choices=list(loading.VARIANT_CHOICES),
                       help="what a 1.5 file cannot tell: its distillation (default: %(default)s, from the file's "
                            "metadata)")
    model.add_argument("--dtype", default="bf16", choices=list(acceleration.DTYPES),
                       help="transformer compute precision; fp16 can overflow to black frames (default: %(default)s)")
    model.add_argument("--fp8", action="store_true", help="store transformer weights in fp8 (default: off)")
    model.add_argument("--compile", action="store_true",
                       help="torch.compile each transformer block: the first run pays the compilation, later steps "
                            "are faster (default: off)")
    model.add_argument("--attention", default="native (PyTorch SDPA)", choices=list(acceleration.ATTENTION_BACKENDS),
                       metavar="BACKEND",
                       help=f"attention kernel, one of: {'; '.join(acceleration.ATTENTION_BACKENDS)}. Backends other "
                            "than native need their package (default: %(default)s)")
    model.add_argument("--offload", default="model", choices=list(acceleration.OFFLOAD_MODES),
                       help="; ".join(f"{k}: {v}" for k, v in acceleration.OFFLOAD_MODES.items()).replace("%", "%%")
                       + " (default: %(default)s)")
    model.add_argument("--vae-dtype", choices=list(acceleration.DTYPES), default=None,
                       help="VAE precision (default: the same as --dtype)")
    model.add_argument("--text-encoder-dtype", choices=list(acceleration.DTYPES), default=None,
                       help="text encoder precision (default: the same as --dtype)")
    model.add_argument("--text-encoder-fp8", action="store_true",
                       help="store the language model's weights in fp8, about half the memory (default: off)")
    model.add_argument("--text-encoder-device", choices=TEXT_ENCODER_DEVICES, default="gpu",
                       help="cpu keeps the 7-8 B language model off the GPU: slower encode, no VRAM (default: "
                            "%(default)s, meaning --device)")
    model.add_argument("--device", default=None,
                       help="cpu, cuda, cuda:N, mps or xpu (default: cuda when available, else cpu)")
    model.add_argument("--demo", action="store_true",
                       help="build a tiny random model instead of loading one: the video is noise; checks the path "
                            f"works. Uses {', '.join(f'{k} {v}' for k, v in DEMO_DEFAULTS.items())} unless given "
                            "(default: off)")
    model.add_argument("--demo-family", default=families.HUNYUAN_VIDEO_15, choices=list(families.NAMES),
                       help="with --demo: which model family to build (default: %(default)s)")

    out = parser.add_argument_group("output")
    out.add_argument("--quiet", action="store_true", help="no progress bars (default: off)")
    out.add_argument("--verbose", action="store_true",
                     help="also show the libraries' own messages and loading bars (default: off)")


def build_parser(prog: str | None = None) -> Parser:
    prog = prog or _prog_name()
    parser = Parser(prog=prog, allow_abbrev=False,
                    description="HunyuanVideo image-to-video (1.5 and 13 B) from the command line: the same path as "
                                "the ComfyUI nodes, from model files to an MP4.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="{generate,batch,download}")

    gen = sub.add_parser("generate", help="one start image + prompt -> one MP4", allow_abbrev=False,
                         description="Generate one video. Every setting is checked before any model is loaded.")
    job = gen.add_argument_group("the video")
    job.add_argument("--image", help="start image (PNG, JPEG, WebP, ...); --demo makes one if left out")
    job.add_argument("--output", required=True, help="the MP4 file to write (its folder is created if needed)")
    _add_per_video(job)
    _add_models(gen)

    batch = sub.add_parser(
        "batch", help="a file of jobs -> one MP4 each, with the models loaded once", allow_abbrev=False,
        description="Render every job of a JSON Lines (.jsonl) or CSV file with the models loaded once. A job is "
                    "one line: 'image' (relative to the jobs file) and any per-video setting by name "
                    f"({', '.join(JOB_KEYS)}), plus 'output' (an .mp4 name inside --output-dir; default "
                    "NNNN_<image name>.mp4 from the job's number). Settings a job leaves out come from the command "
                    "line. Jobs whose output exists are skipped; a failed job does not stop the others.",
    )
    batch.add_argument("jobs", help="the jobs file (.jsonl or .csv)")
    batch.add_argument("--output-dir", metavar="FOLDER",
                       help="where the videos go (default: the jobs file's folder)")
    defaults = batch.add_argument_group("per-video settings for jobs that leave them out")
    _add_per_video(defaults)
    _add_models(batch)
    download.add_parser(sub)
    return parser


def _prog_name() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "hunyuan-i2v" if name.startswith("hunyuan-i2v") else "python -m hunyuan_i2v"


def given_options(parser: argparse.ArgumentParser, command: str, argv: list[str]) -> set[str]:
    """The settings the user typed (as dests), so --demo can fill in only the others."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    given = set()
    for action in sub._actions:
        for option in action.option_strings:
            if any(arg == option or arg.startswith(option + "=") for arg in argv):
                given.add(action.dest)
    return given
