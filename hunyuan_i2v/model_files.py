"""The model files users fetch: ComfyUI's repackaged HunyuanVideo-1.5 and HunyuanVideo-I2V (13 B) files.

One table, used by the example workflows (``properties.models``: the frontend's missing-model panel and its
Download button), the README's file tables, the loaders' tooltips and ``hunyuan-i2v download``, so they
never disagree. No ComfyUI and no network here.

Where the facts come from: the repositories, paths and folders of the files that ComfyUI's own templates
use are those of the ``comfyui-workflow-templates`` package (0.11.97: ``video_hunyuan_video_1.5_720p_i2v``,
``hunyuan_video_text_to_video``); the other files sit beside them in the same repositories, under the
names their model cards list. Sizes are approximate (the Hub's listings round them, and the templates give
only totals): ``hunyuan-i2v download`` asks the Hub for each file's exact size before it starts.
"""

from __future__ import annotations

from dataclasses import dataclass

HUNYUAN_VIDEO_15 = "hunyuan_video_15"  # the names of families.py, without importing torch through it
HUNYUAN_VIDEO_13B = "hunyuan_video_13b"
FAMILY_OPTIONS = {"1.5": HUNYUAN_VIDEO_15, "13b": HUNYUAN_VIDEO_13B}  # what --family takes

HUB = "https://huggingface.co"
REVISION = "main"
REPO_15 = "Comfy-Org/HunyuanVideo_1.5_repackaged"
REPO_13B = "Comfy-Org/HunyuanVideo_repackaged"

# Parts, in the order a table lists them.
TRANSFORMER = "transformer"
SR_TRANSFORMER = "sr_transformer"
UPSAMPLER = "latent_upsampler"
VAE = "vae"
TEXT_ENCODER = "text_encoder"
VISION = "vision"
TEXT_ENCODER_2 = "text_encoder_2"
PARTS = (TRANSFORMER, SR_TRANSFORMER, UPSAMPLER, VAE, TEXT_ENCODER, VISION, TEXT_ENCODER_2)
PART_TITLES = {TRANSFORMER: "transformer", SR_TRANSFORMER: "super-resolution transformer",
               UPSAMPLER: "latent upsampler", VAE: "VAE", TEXT_ENCODER: "language model (text_encoder)",
               VISION: "image encoder (vision)", TEXT_ENCODER_2: "text_encoder_2"}

GB = 1_000_000_000


@dataclass(frozen=True)
class ModelFile:
    name: str  # the file name ComfyUI users have, and the loaders list
    folder: str  # ComfyUI's models folder (folder_paths key) it goes in
    repo: str  # Hugging Face repository
    path: str  # path inside the repository
    size: int  # bytes, approximate: the Hub has the exact size
    family: str
    part: str
    release: str = ""  # transformers: the release (see RELEASES); "" for parts every release shares
    precision: str = ""  # "fp8_scaled" for ComfyUI's fp8 files with per-tensor scales, else the stored dtype
    in_templates: bool = False  # named by ComfyUI's own workflow templates, not only by the model card
    note: str = ""

    @property
    def url(self) -> str:
        return f"{HUB}/{self.repo}/resolve/{REVISION}/{self.path}"

    @property
    def relative_path(self) -> str:
        """Where the file goes inside a ComfyUI models folder."""
        return f"{self.folder}/{self.name}"

    def workflow_entry(self) -> dict:
        """The frontend's ``properties.models`` entry."""
        return {"name": self.name, "url": self.url, "directory": self.folder}


def _15(name: str, folder: str, size: float, part: str, release: str = "", precision: str = "fp16",
        in_templates: bool = False, note: str = "", repo: str = REPO_15, path: str | None = None) -> ModelFile:
    return ModelFile(name, folder, repo, path or f"split_files/{folder}/{name}", int(size * GB), HUNYUAN_VIDEO_15,
                     part, release, precision, in_templates, note)


def _13b(name: str, folder: str, size: float, part: str, release: str = "", precision: str = "bf16",
         in_templates: bool = False, note: str = "", repo: str = REPO_13B, path: str | None = None) -> ModelFile:
    return ModelFile(name, folder, repo, path or f"split_files/{folder}/{name}", int(size * GB), HUNYUAN_VIDEO_13B,
                     part, release, precision, in_templates, note)


def _transformers_15(stem: str, precisions: tuple[str, ...], part: str = TRANSFORMER,
                     templates: tuple[str, ...] = (), note: str = "") -> list[ModelFile]:
    """``hunyuanvideo1.5_<stem>_<precision>``; the release is the stem without ``_i2v`` / ``_distilled`` of SR."""
    sizes = {"fp16": 16.7, "fp8_scaled": 8.34}
    release = stem.replace("_i2v", "").replace("_sr_distilled", "_sr")
    return [_15(f"hunyuanvideo1.5_{stem}_{p}.safetensors", "diffusion_models", sizes[p], part, release, p,
                in_templates=p in templates, note=note) for p in precisions]


FILES: tuple[ModelFile, ...] = (
    # HunyuanVideo-1.5 transformers, one per release and precision.
    *_transformers_15("480p_i2v", ("fp16",)),
    *_transformers_15("480p_i2v_cfg_distilled", ("fp16", "fp8_scaled"), note="CFG-distilled: set the loader's variant"),
    *_transformers_15("480p_i2v_step_distilled", ("fp16", "fp8_scaled"), note="8 steps, the fastest"),
    *_transformers_15("720p_i2v", ("fp16",), templates=("fp16",)),
    *_transformers_15("720p_i2v_cfg_distilled", ("fp16", "fp8_scaled"), note="CFG-distilled: set the loader's variant"),
    # Super-resolution: 480p videos go to 720p, 720p videos to 1080p.
    *_transformers_15("720p_sr_distilled", ("fp16", "fp8_scaled"), part=SR_TRANSFORMER,
                      note="upscales 480p videos to 720p"),
    *_transformers_15("1080p_sr_distilled", ("fp16", "fp8_scaled"), part=SR_TRANSFORMER, templates=("fp16",),
                      note="upscales 720p videos to 1080p"),
    _15("hunyuanvideo15_latent_upsampler_720p.safetensors", "latent_upscale_models", 0.09, UPSAMPLER, "720p_sr",
        "fp32", note="with the 720p super-resolution transformer"),
    _15("hunyuanvideo15_latent_upsampler_1080p.safetensors", "latent_upscale_models", 0.4, UPSAMPLER, "1080p_sr",
        "fp32", in_templates=True, note="with the 1080p super-resolution transformer"),
    _15("hunyuanvideo15_vae_fp16.safetensors", "vae", 2.52, VAE, in_templates=True),
    _15("qwen_2.5_vl_7b.safetensors", "text_encoders", 16.6, TEXT_ENCODER, precision="bf16",
        note="Qwen2.5-VL 7B"),
    _15("qwen_2.5_vl_7b_fp8_scaled.safetensors", "text_encoders", 9.38, TEXT_ENCODER, precision="fp8_scaled",
        in_templates=True, note="Qwen2.5-VL 7B in fp8, about half the memory"),
    _15("byt5_small_glyphxl_fp16.safetensors", "text_encoders", 0.44, TEXT_ENCODER_2, in_templates=True,
        note='reads text in "double quotes" in the prompt'),
    _15("sigclip_vision_patch14_384.safetensors", "clip_vision", 0.86, VISION, in_templates=True,
        repo="Comfy-Org/sigclip_vision_384", path="sigclip_vision_patch14_384.safetensors"),
    # HunyuanVideo-I2V (13 B).
    _13b("hunyuan_video_v2_replace_image_to_video_720p_bf16.safetensors", "diffusion_models", 25.6, TRANSFORMER,
         "v2", note="v2 token replace, recommended"),
    _13b("hunyuan_video_image_to_video_720p_bf16.safetensors", "diffusion_models", 25.6, TRANSFORMER, "v1",
         note="v1 latent concat"),
    _13b("hunyuan_video_vae_bf16.safetensors", "vae", 0.493, VAE, in_templates=True),
    _13b("llava_llama3_fp16.safetensors", "text_encoders", 16.1, TEXT_ENCODER, precision="fp16",
         note="Llama-3 8B of llava-llama-3"),
    _13b("llava_llama3_fp8_scaled.safetensors", "text_encoders", 9.09, TEXT_ENCODER, precision="fp8_scaled",
         in_templates=True, note="in fp8, about half the memory"),
    _13b("clip_l.safetensors", "text_encoders", 0.246, TEXT_ENCODER_2, precision="fp16", in_templates=True,
         repo="comfyanonymous/flux_text_encoders", path="clip_l.safetensors"),
    _13b("llava_llama3_vision.safetensors", "clip_vision", 0.65, VISION, precision="fp16",
         note="CLIP ViT-L/14-336 of llava-llama-3"),
)

BY_NAME = {file.name: file for file in FILES}
assert len(BY_NAME) == len(FILES), "two entries with one file name"

# Releases per family, in the order `--release` lists them; "_sr" releases are the super-resolution stage alone.
RELEASES = {
    family: tuple(dict.fromkeys(f.release for f in FILES if f.family == family and f.release))
    for family in (HUNYUAN_VIDEO_15, HUNYUAN_VIDEO_13B)
}
UPSCALES = {"720p": "720p_sr", "1080p": "1080p_sr"}  # --upscale: the super-resolution release it adds


def find(name: str) -> ModelFile | None:
    return BY_NAME.get(name)


def _pick(candidates: list[ModelFile], precision: str | None) -> ModelFile:
    """The file of the wanted precision, or the release's only one."""
    for file in candidates:
        if file.precision == precision:
            return file
    return candidates[0]


def release_files(family: str, release: str, *, fp8: bool = True) -> list[ModelFile]:
    """The release's own files: its transformer (fp8_scaled where it has one and ``fp8``), and for a
    super-resolution release its latent upsampler as well."""
    family = FAMILY_OPTIONS.get(family, family)
    own = [f for f in FILES if f.family == family and f.release == release]
    if not own:
        choices = ", ".join(RELEASES.get(family, ()))
        raise ValueError(f"{family} has no release {release!r}; the releases are: {choices}.")
    by_part: dict[str, list[ModelFile]] = {}
    for file in own:
        by_part.setdefault(file.part, []).append(file)
    return [_pick(files, "fp8_scaled" if fp8 else None) for files in by_part.values()]


def shared_files(family: str, *, text_encoder_fp8: bool = False) -> list[ModelFile]:
    """What every release of the family needs besides its transformer: VAE, text encoders, image encoder."""
    family = FAMILY_OPTIONS.get(family, family)
    chosen = []
    for part in (VAE, TEXT_ENCODER, VISION, TEXT_ENCODER_2):
        candidates = [f for f in FILES if f.family == family and f.part == part and not f.release]
        fp8 = [f for f in candidates if f.precision == "fp8_scaled"]
        plain = [f for f in candidates if f.precision != "fp8_scaled"]
        chosen.append((fp8 if text_encoder_fp8 and fp8 else plain or candidates)[0])
    return chosen


def files_for(family: str, release: str, *, text_encoder_fp8: bool = False, fp8: bool = True,
              upscale: str | None = None) -> list[ModelFile]:
    """Every file a run of ``release`` needs (and the super-resolution stage to ``upscale``), in table order."""
    family = FAMILY_OPTIONS.get(family, family)
    wanted = release_files(family, release, fp8=fp8) + shared_files(family, text_encoder_fp8=text_encoder_fp8)
    if upscale:
        if family != HUNYUAN_VIDEO_15 or upscale not in UPSCALES:
            raise ValueError(f"--upscale is {', '.join(UPSCALES)} for HunyuanVideo-1.5 only, got {upscale!r}.")
        wanted += release_files(family, UPSCALES[upscale], fp8=fp8)
    order = {file.name: index for index, file in enumerate(FILES)}
    return sorted(dict.fromkeys(wanted), key=lambda f: order[f.name])


def family_files(family: str) -> list[ModelFile]:
    family = FAMILY_OPTIONS.get(family, family)
    return [f for f in FILES if f.family == family]


def names_for(family: str, part: str) -> list[str]:
    """File names of a part, for tooltips."""
    return [f.name for f in family_files(family) if f.part == part]


def shown_size(size: int) -> str:
    if size >= GB / 10:
        return f"{size / GB:.1f} GB"
    return f"{size / 1e6:.0f} MB" if size >= 1_000_000 else f"{size:,} bytes"


# ---------------------------------------------------------------------------- the README's tables

README_BEGIN = ("<!-- model files: {family} (generated from hunyuan_i2v/model_files.py; "
                "python tools/make_model_tables.py) -->")
README_END = "<!-- end of model files: {family} -->"


def readme_table(family: str) -> str:
    """The README's table of a family's files, with the markers around it."""
    family = FAMILY_OPTIONS.get(family, family)
    rows = ["| part | file | folder (`ComfyUI/models/…`) | size (about) | what it is |", "|---|---|---|---|---|"]
    for file in family_files(family):
        what = ", ".join(x for x in (f"release `{file.release}`" if file.release else "", file.note) if x)
        rows.append(f"| {PART_TITLES[file.part]} | [`{file.name}`]({file.url}) | `{file.folder}/` | "
                    f"{shown_size(file.size)} | {what} |")
    return "\n".join([README_BEGIN.format(family=family), *rows, README_END.format(family=family)])


def replace_readme_tables(text: str) -> str:
    """``text`` (the README) with each family's table regenerated between its markers."""
    for family in (HUNYUAN_VIDEO_15, HUNYUAN_VIDEO_13B):
        begin, end = README_BEGIN.format(family=family), README_END.format(family=family)
        start, stop = text.index(begin), text.index(end) + len(end)
        text = text[:start] + readme_table(family) + text[stop:]
    return text
