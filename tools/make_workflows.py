"""Writes the example workflows: workflows/<name>.json (ComfyUI's UI format, version 0.4) and
workflows/api/<name>.json (the API prompt that POST /prompt takes), both from one description per graph.

    python tools/make_workflows.py

Widget order, link slots and types come from the pack's INPUT_TYPES / RETURN_TYPES (and, for the few core
nodes used, from the specs below), so a changed node shows up as a changed file. Layout: columns of groups,
left to right; node sizes are at least what ComfyUI's frontend draws for them (measured with
tools/screenshot_workflows.py). tests/test_workflows.py checks the result; it does not use this script.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "workflows"


def load_pack():
    """The repository as a package, the way ComfyUI imports it (relative imports inside)."""
    name = "hyv_pack"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


PACK = load_pack()
MODEL_FILES = importlib.import_module("hyv_pack.hunyuan_i2v.model_files")
NODES = PACK.NODE_CLASS_MAPPINGS
# On each pack node, the Comfy Registry id and version (pyproject's name and version), which a frontend that
# lacks the nodes uses to offer installing the pack. Not aux_id: that names a GitHub repository, which the
# project does not have yet.
_PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
PACK_STAMP = {"cnr_id": _PROJECT["name"], "ver": _PROJECT["version"]}
DISPLAY = PACK.NODE_DISPLAY_NAME_MAPPINGS

# Core nodes: (link inputs, outputs, widgets (name, extra values stored after it), display name).
CORE = {
    "LoadImage": ([], [("IMAGE", "IMAGE"), ("MASK", "MASK")], [("image", ["upload"])], "Load Image"),
    "SaveVideo": ([("video", "VIDEO")], [], [("filename_prefix", []), ("format", []), ("codec", [])], "Save Video"),
    "PreviewAny": ([("source", "*")], [], [], "Preview Any"),
    "PreviewImage": ([("images", "IMAGE")], [], [], "Preview Image"),
    "MarkdownNote": ([], [], [("text", [])], "Markdown Note"),
}
WIDGET_KINDS = ("INT", "FLOAT", "STRING", "BOOLEAN")
EXTRA_DEFAULTS = {"control_after_generate": "fixed", "upload": "image"}
TITLE_H = 30  # LiteGraph's node title bar, drawn above pos
GROUP_TITLE_H = 50  # group header (font 24) plus a margin
PAD = 20  # group border to node
NODE_GAP = 40  # between nodes in a group (room for the frontend's node badge)
GAP = 60  # between columns
V_GAP = 40  # between groups in a column

# Minimum sizes ComfyUI's frontend (1.27) gives these nodes; the layout never draws them smaller.
MIN_SIZE = {
    "HunyuanI2VLoadTransformer": (470, 246),
    "HunyuanI2VLoadVAE": (470, 82),
    "HunyuanI2VLoadTextEncoders": (470, 178),
    "HunyuanI2VEncode": (420, 420),
    "HunyuanI2VSample": (340, 318),
    "HunyuanI2VDecode": (300, 126),
    "HunyuanI2VLoadLatentUpsampler": (470, 82),
    "HunyuanI2VSuperResolution": (420, 330),
    "HunyuanVideoI2VWaveSpeed": (420, 430),
    "HunyuanVideo15I2VWaveSpeed": (420, 400),
    "LoadImage": (320, 326),
    "SaveVideo": (360, 420),
    "PreviewAny": (420, 200),
    "PreviewImage": (360, 320),
    "MarkdownNote": (560, 480),
}
GROUP_COLORS = {"models": "#3f789e", "image": "#8a8", "encode": "#b58b2a", "sample": "#a1309b",
                "output": "#88a", "info": "#3f789e", "remote": "#b06634", "upscale": "#2a8a7a"}


def widget_names(node_type: str) -> list[tuple[str, list[str]]]:
    """(widget name, extra values stored after it) in the order the frontend stores widgets_values."""
    if node_type in CORE:
        return CORE[node_type][2]
    widgets = []
    spec = NODES[node_type].INPUT_TYPES()
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            kind, options = entry[0], (entry[1] if len(entry) > 1 else {})
            if isinstance(kind, list) or kind in WIDGET_KINDS:
                widgets.append((name, ["control_after_generate"] if options.get("control_after_generate") else []))
    return widgets


def link_inputs(node_type: str) -> list[tuple[str, str]]:
    if node_type in CORE:
        return CORE[node_type][0]
    spec = NODES[node_type].INPUT_TYPES()
    return [(name, entry[0]) for section in ("required", "optional") for name, entry in spec.get(section, {}).items()
            if not (isinstance(entry[0], list) or entry[0] in WIDGET_KINDS)]


def outputs(node_type: str) -> list[tuple[str, str]]:
    if node_type in CORE:
        return CORE[node_type][1]
    cls = NODES[node_type]
    return list(zip(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES), cls.RETURN_TYPES))


def display_name(node_type: str) -> str:
    return CORE[node_type][3] if node_type in CORE else DISPLAY[node_type]


@dataclass
class Node:
    key: str
    type: str
    widgets: dict = field(default_factory=dict)
    title: str | None = None
    size: tuple[int, int] | None = None  # None: MIN_SIZE
    color: str | None = None
    bgcolor: str | None = None


@dataclass
class Group:
    title: str
    nodes: list[Node]
    color: str = "#3f789e"
    horizontal: bool = False


@dataclass
class Space:
    """Empty room in a column, e.g. a corridor for links that pass it."""
    height: int


@dataclass
class Workflow:
    name: str
    summary: str  # one line, kept in extra.info
    columns: list[list]  # each column: Groups (or a bare Node, e.g. the note) stacked top to bottom
    links: list[tuple[str, str, str, str]]  # (from key, output name, to key, input name)


def build(workflow: Workflow) -> tuple[dict, dict]:
    """(UI graph, API prompt)."""
    placed, groups, x = {}, [], 0
    for column in workflow.columns:
        y, width = 0, 0
        for item in column:
            if isinstance(item, Space):
                y += item.height
                continue
            if isinstance(item, Node):
                w, h = item.size or MIN_SIZE[item.type]
                placed[item.key] = (item, [x, y + TITLE_H], [w, h])
                y += TITLE_H + h + V_GAP
                width = max(width, w)
                continue
            gx, gy = x, y
            cx, cy, row_h, group_w = gx + PAD, gy + GROUP_TITLE_H, 0, 0
            for node in item.nodes:
                w, h = node.size or MIN_SIZE[node.type]
                placed[node.key] = (node, [cx, cy + TITLE_H], [w, h])
                if item.horizontal:
                    cx += w + NODE_GAP
                    row_h = max(row_h, TITLE_H + h)
                    group_w = cx - NODE_GAP + PAD - gx
                else:
                    cy += TITLE_H + h + NODE_GAP
                    group_w = max(group_w, w + 2 * PAD)
            group_h = (cy + row_h + PAD - gy) if item.horizontal else (cy - NODE_GAP + PAD - gy)
            groups.append({"title": item.title, "bounding": [gx, gy, group_w, group_h], "color": item.color,
                           "font_size": 24, "flags": {}})
            y += group_h + V_GAP
            width = max(width, group_w)
        x += width + GAP

    ids = {key: index + 1 for index, key in enumerate(placed)}
    links, link_ids_out, link_in = [], {}, {}
    for number, (src, out_name, dst, in_name) in enumerate(workflow.links, start=1):
        src_node, dst_node = placed[src][0], placed[dst][0]
        out_names = [name for name, _ in outputs(src_node.type)]
        in_names = [name for name, _ in link_inputs(dst_node.type)]
        out_slot, in_slot = out_names.index(out_name), in_names.index(in_name)
        kind = outputs(src_node.type)[out_slot][1]
        links.append([number, ids[src], out_slot, ids[dst], in_slot, kind])
        link_ids_out.setdefault((src, out_slot), []).append(number)
        link_in[(dst, in_slot)] = number

    # Execution order: a node after everything feeding it (the frontend recomputes it anyway).
    order, done = {}, set()
    while len(done) < len(placed):
        for key in placed:
            feeders = {link[1] for link in links if link[3] == ids[key]}
            if key not in done and feeders <= {ids[k] for k in done}:
                order[key] = len(done)
                done.add(key)

    ui_nodes, api = [], {}
    for key, (node, pos, size) in placed.items():
        values, api_inputs = [], {}
        for name, extra in widget_names(node.type):
            value = node.widgets[name]
            values.append(value)
            api_inputs[name] = value
            for extra_name in extra:  # the seed's control; the upload button, which stores "image"
                values.append(node.widgets.get(extra_name, EXTRA_DEFAULTS[extra_name]))
        unknown = set(node.widgets) - {n for n, e in widget_names(node.type)} - {"control_after_generate"}
        assert not unknown, (node.key, unknown)
        inputs = []
        for slot, (name, kind) in enumerate(link_inputs(node.type)):
            link = link_in.get((key, slot))
            if link is None and node.type not in CORE:
                section = NODES[node.type].INPUT_TYPES().get("optional", {})
                if name in section:
                    inputs.append({"name": name, "type": kind, "shape": 7, "link": None})
                    continue
            inputs.append({"name": name, "type": kind, "link": link})
            if link is not None:
                source = next(item for item in links if item[0] == link)
                api_inputs[name] = [str(source[1]), source[2]]
        ui_node = {
            "id": ids[key], "type": node.type, "pos": pos, "size": size, "flags": {}, "order": order[key], "mode": 0,
            "inputs": inputs,
            "outputs": [{"name": name, "type": kind, "links": link_ids_out.get((key, slot), [])}
                        for slot, (name, kind) in enumerate(outputs(node.type))],
            "properties": {} if node.type == "MarkdownNote" else {"Node name for S&R": node.type,
                                                                  **(PACK_STAMP if node.type in NODES else {})},
            "widgets_values": values,
        }
        # The frontend's missing-model panel: each file's folder and a Download button (from the engine's table).
        models = [MODEL_FILES.BY_NAME[value].workflow_entry() for value in values
                  if isinstance(value, str) and value in MODEL_FILES.BY_NAME]
        if models:
            ui_node["properties"]["models"] = models
        if node.title:
            ui_node["title"] = node.title
        if node.color:
            ui_node["color"], ui_node["bgcolor"] = node.color, node.bgcolor
        ui_nodes.append(ui_node)
        if node.type != "MarkdownNote":  # frontend-only: not part of the prompt
            api[str(ids[key])] = {"inputs": api_inputs, "class_type": node.type,
                                  "_meta": {"title": node.title or display_name(node.type),
                                            **(PACK_STAMP if node.type in NODES else {})}}
    for index, group in enumerate(groups, start=1):
        group["id"] = index
    ui = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "hunyuan-video-i2v/workflows/" + workflow.name)),
        "revision": 0, "last_node_id": len(placed), "last_link_id": len(links),
        "nodes": ui_nodes, "links": links, "groups": [dict(id=g.pop("id"), **g) for g in groups], "config": {},
        "extra": {"ds": {"scale": 0.6, "offset": [40, 60]}, "info": workflow.summary}, "version": 0.4,
    }
    return ui, api


# ---------------------------------------------------------------------------- the graphs

NEGATIVE_13B = "deformation, a poor composition and deformed video, bad teeth, bad eyes, bad limbs"
PROMPT = ("The cat slowly turns its head towards the camera and blinks, its whiskers twitching, soft window light, "
          "gentle camera push-in.")
NOTE_COLOR = ("#432", "#653")


def note(text: str, height: int = 480) -> Node:
    return Node("note", "MarkdownNote", {"text": text.strip() + "\n"}, title="Read me", size=(560, height),
                color=NOTE_COLOR[0], bgcolor=NOTE_COLOR[1])


def files_note(*names: str) -> str:
    """The note's file table, from the engine's table of model files (the same links the loaders carry)."""
    rows = []
    for name in names:
        entry = MODEL_FILES.BY_NAME[name]
        rows.append(f"| [`{name}`]({entry.url}) | `{entry.folder}/` | {MODEL_FILES.shown_size(entry.size)} |")
    return "\n| file | folder (`ComfyUI/models/…`) | size (about) |\n|---|---|---|\n" + "\n".join(rows) + "\n"


def files_15(model: str) -> str:
    return files_note(model, "hunyuanvideo15_vae_fp16.safetensors", "qwen_2.5_vl_7b_fp8_scaled.safetensors",
                      "byt5_small_glyphxl_fp16.safetensors", "sigclip_vision_patch14_384.safetensors")


def files_13b(model: str) -> str:
    return files_note(model, "hunyuan_video_vae_bf16.safetensors", "llava_llama3_fp8_scaled.safetensors",
                      "clip_l.safetensors", "llava_llama3_vision.safetensors")


COMMON_TAIL = """
- **Frames** must be 4n+1; **seed** is made on the CPU, so it gives the same video on any GPU.
- The **Model info** box shows what the loader found in the file (family, release) and what it assumed.
- Out of memory in **Decode**: lower the tile size (tiling stays on).
"""


@dataclass
class Upscale:
    """One HunyuanVideo-1.5 super-resolution stage: SR transformer + latent upsampler of ``resolution``."""
    resolution: str  # "720p" or "1080p"
    model: str
    upsampler: str
    offload: str = "model"


def upscale_stage(stage: Upscale, index: int, latent_from: str) -> tuple[tuple[Group, Group], list]:
    """The stage's groups (clearly marked, one column each) and its links; ``latent_from`` is the Sample node it
    upsamples."""
    key = f"sr{stage.resolution}"
    transformer = Node(f"{key}_transformer", "HunyuanI2VLoadTransformer", dict(
        model_name=stage.model, weight_dtype="bf16", fp8_storage=True, attention="native (PyTorch SDPA)",
        offload_mode=stage.offload, variant="auto", compile_blocks=False, gpus=1), title=f"Load SR transformer ({stage.resolution})")
    upsampler = Node(f"{key}_upsampler", "HunyuanI2VLoadLatentUpsampler", dict(upsampler_name=stage.upsampler),
                     title=f"Load latent upsampler ({stage.resolution})")
    prepare = Node(key, "HunyuanI2VSuperResolution", dict(
        resolution=stage.resolution, width=0, height=0, noise_augmentation=0.7), title=f"Super-resolution to {stage.resolution}")
    sample = Node(f"{key}_sample", "HunyuanI2VSample", dict(
        seed=42, control_after_generate="fixed", steps=0, frames=121, flow_shift=0.0, embedded_guidance=0.0,
        cfg_scale=0.0, i2v_stability=True, cache="off", cache_threshold=0.1), title=f"Sample {stage.resolution} (SR)")
    # Two groups, so that every link runs left to right: the stage's models, then its two working nodes.
    groups = (Group(f"{index}a · Upscale {stage.resolution}: SR models", [transformer, upsampler], GROUP_COLORS["upscale"]),
              Group(f"{index}b · Upscale {stage.resolution}: super-resolution", [prepare, sample],
                    GROUP_COLORS["upscale"], horizontal=True))
    links = [
        ("encode", "conditioning", key, "conditioning"),
        (latent_from, "latent", key, "latent"),
        (f"{key}_upsampler", "upsampler", key, "upsampler"),
        ("vae", "vae", key, "vae"),
        ("image", "IMAGE", key, "image"),
        ("encoders", "text_encoders", key, "text_encoders"),
        (key, "conditioning", f"{key}_sample", "conditioning"),
        (f"{key}_transformer", "model", f"{key}_sample", "model"),
    ]
    return groups, links


def local_graph(name: str, summary: str, note_text: str, *, model: str, family: str, variant: str, fp8: bool,
                offload: str, resolution: str, frames: int, prompt: str, negative: str, te_fp8: bool,
                te_device: str, prefix: str, note_height: int = 480, gpus: int = 1,
                upscales: tuple[Upscale, ...] = ()) -> Workflow:
    if family == "1.5":
        vae, te, vision, te2 = ("hunyuanvideo15_vae_fp16.safetensors", "qwen_2.5_vl_7b_fp8_scaled.safetensors",
                                "sigclip_vision_patch14_384.safetensors", "byt5_small_glyphxl_fp16.safetensors")
    else:
        vae, te, vision, te2 = ("hunyuan_video_vae_bf16.safetensors", "llava_llama3_fp8_scaled.safetensors",
                                "llava_llama3_vision.safetensors", "clip_l.safetensors")
    transformer = Node("transformer", "HunyuanI2VLoadTransformer", dict(
        model_name=model, weight_dtype="bf16", fp8_storage=fp8, attention="native (PyTorch SDPA)",
        offload_mode=offload, variant=variant, compile_blocks=False, gpus=gpus))
    load_vae = Node("vae", "HunyuanI2VLoadVAE", dict(vae_name=vae, dtype="bf16"))
    encoders = Node("encoders", "HunyuanI2VLoadTextEncoders", dict(
        text_encoder=te, vision=vision, text_encoder_2=te2, dtype="bf16", fp8_storage=te_fp8, device=te_device))
    image = Node("image", "LoadImage", dict(image="example.png"), title="Start image")
    info = Node("info", "PreviewAny", {}, title="Model info")
    encode = Node("encode", "HunyuanI2VEncode", dict(
        prompt=prompt, negative_prompt=negative, resolution=resolution, width=0, height=0))
    sample = Node("sample", "HunyuanI2VSample", dict(
        seed=42, control_after_generate="randomize", steps=0, frames=frames, flow_shift=0.0, embedded_guidance=0.0,
        cfg_scale=0.0, i2v_stability=True, cache="off", cache_threshold=0.1))
    decode = Node("decode", "HunyuanI2VDecode", dict(tiling=True, tile_size=256, fps=24.0))
    save = Node("save", "SaveVideo", dict(filename_prefix=prefix, format="auto", codec="auto"))
    links = [
        ("transformer", "model", "sample", "model"),
        ("transformer", "info", "info", "source"),
        ("encoders", "text_encoders", "encode", "text_encoders"),
        ("vae", "vae", "encode", "vae"),
        ("image", "IMAGE", "encode", "image"),
        ("encode", "conditioning", "sample", "conditioning"),
    ]
    columns = [
        [note(note_text, note_height)],
        [Group("1 · Load models", [transformer, load_vae, encoders], GROUP_COLORS["models"]),
         Group("2 · Start image", [image], GROUP_COLORS["image"])],
        # The model links run straight to the sampler above the encode group.
        [Space(200), Group("3 · Encode image + prompt", [encode], GROUP_COLORS["encode"]),
         Group("Model info (after a run)", [info], GROUP_COLORS["info"])],
        [Group("4 · Sample", [sample], GROUP_COLORS["sample"])],
    ]
    last = "sample"
    for number, stage in enumerate(upscales, start=5):
        (models, working), stage_links = upscale_stage(stage, number, last)
        if number == 5:
            models_column = [models]
            columns += [models_column, [working]]
        else:  # a later stage's models stack under the first stage's: a narrower graph, links still left to right
            models_column.append(models)
            columns.append([working])
        links += stage_links
        last = f"sr{stage.resolution}_sample"
    links += [("vae", "vae", "decode", "vae"), (last, "latent", "decode", "latent"), ("decode", "video", "save", "video")]
    columns.append([Group(f"{5 + len(upscales)} · Decode + save", [decode, save], GROUP_COLORS["output"],
                          horizontal=True)])
    return Workflow(name=name, summary=summary, columns=columns, links=links)


def hunyuan15_480p() -> Workflow:
    model = "hunyuanvideo1.5_480p_i2v_step_distilled_fp8_scaled.safetensors"
    text = f"""
## HunyuanVideo-1.5 image-to-video: 480p step-distilled, small GPU

**Open this one first.** 8 steps instead of 50, no CFG pass, 121 frames (5 s at 24 fps), and the
settings that need the least GPU memory.

**Files** (ComfyUI's repackaged HunyuanVideo-1.5 files):
{files_15(model)}
**Settings that matter**
- **Load Transformer**: *fp8 storage* on (half the weight memory of bf16), *offload mode* **block**
  (blocks stream to the GPU: least VRAM, slower). With memory to spare, *model* is faster.
- **Load Text Encoders**: *fp8 storage* on (Qwen2.5-VL in about 9 GB instead of 16). Out of memory while
  encoding: set *device* **cpu** (slower, no GPU memory).
- **Encode**: *resolution* **480p**, this file's. *width*/*height* 0 = from the image's aspect ratio.
- **Sample**: 0 = the model's own value (here 8 steps, shift 7, CFG 1); the node's text says what ran.
- Text in "double quotes" in the prompt is drawn as written text (ByT5 glyph encoder).
{COMMON_TAIL}"""
    return local_graph(
        "Hunyuan 1.5 480p, small GPU (start here)",
        "HunyuanVideo-1.5 I2V 480p step-distilled (8 steps) with small-GPU settings: fp8 storage, block offload, "
        "VAE tiling. Open this one first.",
        text, model=model, family="1.5", variant="auto", fp8=True, offload="block", resolution="480p", frames=121,
        prompt=PROMPT, negative="", te_fp8=True, te_device="gpu", prefix="video/hunyuan_i2v_1.5_480p",
    )


def hunyuan15_720p() -> Workflow:
    model = "hunyuanvideo1.5_720p_i2v_cfg_distilled_fp8_scaled.safetensors"
    text = f"""
## HunyuanVideo-1.5 image-to-video: 720p

The 720p release, CFG-distilled: 50 steps, shift 7, one pass per step. Sharper than 480p, and
several times slower and hungrier.

**Files** (ComfyUI's repackaged HunyuanVideo-1.5 files):
{files_15(model)}
**Settings that matter**
- **Load Transformer**: *variant* **i2v cfg-distilled**: the file cannot tell that it is CFG-distilled,
  and the sampler's defaults depend on it (CFG 1 instead of 6). With the plain 720p file,
  `hunyuanvideo1.5_720p_i2v_fp16.safetensors`, set *variant* auto (CFG 6 with the negative prompt:
  twice the work per step).
- *fp8 storage* on: half the weight memory of bf16. Out of memory in Sample: *offload mode* **block**.
- **Encode**: *resolution* **720p**, this file's. The negative prompt is used only when CFG is above 1.
- **Sample**: 0 = the model's own value (50 steps, shift 7, CFG 1 here). For speed, *cache*
  `first block cache` (threshold 0.05 to 0.15) or `taylorseer` skips work on steps that change little.
{COMMON_TAIL}"""
    return local_graph(
        "Hunyuan 1.5 720p",
        "HunyuanVideo-1.5 I2V 720p (CFG-distilled file, fp8 storage, model offload, VAE tiling).",
        text, model=model, family="1.5", variant="i2v cfg-distilled", fp8=True, offload="model", resolution="720p",
        frames=121, prompt=PROMPT, negative="", te_fp8=True, te_device="gpu", prefix="video/hunyuan_i2v_1.5_720p",
    )


def hunyuan15_720p_multi_gpu() -> Workflow:
    model = "hunyuanvideo1.5_720p_i2v_cfg_distilled_fp8_scaled.safetensors"
    text = f"""
## HunyuanVideo-1.5 image-to-video: 720p on several GPUs

The 720p workflow with **GPUs to use** at 4: one video's tokens are split over four GPUs (sequence
parallelism, Ulysses), so each step takes about a quarter of the time. Every GPU holds a whole copy
of the transformer; the text encoders and the VAE stay with ComfyUI on its own GPU.

**Files** (ComfyUI's repackaged HunyuanVideo-1.5 files):
{files_15(model)}
**Settings that matter**
- **Load Transformer**: *gpus* is how many GPUs share each video: 2, 4 or 8 for HunyuanVideo-1.5
  (16 attention heads), 2, 3, 4, 6 or 8 for the 13 B model (24). Set it to your GPU count. The
  loader starts one worker process per GPU (the console shows their output) and its info says the
  weight memory each GPU holds. They stop when the model is unloaded or ComfyUI exits; if one dies,
  the run stops with an error and the next run starts them again.
- *attention* is PyTorch SDPA on several GPUs (the split needs a kernel that takes a mask).
- GPU 0 also holds ComfyUI's own models: with little memory to spare there, load the text encoders
  on the *cpu*.
- **Sample**: progress, previews and Cancel work as on one GPU. *cache* `taylorseer` works;
  `first block cache` does not (each GPU would decide alone whether to skip a step).
- One GPU again: set *gpus* to 1.
{COMMON_TAIL}"""
    return local_graph(
        "Hunyuan 1.5 720p, several GPUs",
        "HunyuanVideo-1.5 I2V 720p split over 4 GPUs (sequence parallel worker pool), fp8 storage, VAE tiling.",
        text, model=model, family="1.5", variant="i2v cfg-distilled", fp8=True, offload="model", resolution="720p",
        frames=121, prompt=PROMPT, negative="", te_fp8=True, te_device="gpu",
        prefix="video/hunyuan_i2v_1.5_720p_multi_gpu", gpus=4, note_height=560,
    )


SR_MODELS = {
    "720p": ("hunyuanvideo1.5_720p_sr_distilled_fp8_scaled.safetensors",
             "hunyuanvideo15_latent_upsampler_720p.safetensors"),
    "1080p": ("hunyuanvideo1.5_1080p_sr_distilled_fp8_scaled.safetensors",
              "hunyuanvideo15_latent_upsampler_1080p.safetensors"),
}
SR_TAIL = """
**Super-resolution** (the green groups): the base Sample's latent is resized to Tencent's high-resolution
size for the image's aspect (848x480 -> 1280x720, 1280x720 -> 1904x1072) and refined by the latent
upsampler; the SR transformer then re-samples it with the same prompt and start image: shift 2, no CFG,
6 steps at 720p and 8 at 1080p (0 = these defaults), with 70 % noise mixed into the upsampled latent
(*noise_augmentation*: lower keeps closer to the base video). Its *frames* follow the base video.
To skip an upscale stage: bypass its two groups (Ctrl+B) and connect the previous Sample to Decode.
- **Decode** at 1080p: keep *tiling* on; *tile_size* 0 picks the largest tile that fits (128 px needs
  about 7 GB for 121 frames).
"""


def hunyuan15_upscale(base: str) -> Workflow:
    """480p step-distilled -> 720p -> 1080p (two SR stages, Tencent's pairing), or 720p -> 1080p."""
    if base == "480p":
        model = "hunyuanvideo1.5_480p_i2v_step_distilled_fp8_scaled.safetensors"
        stages_ = (Upscale("720p", *SR_MODELS["720p"], offload="block"),
                   Upscale("1080p", *SR_MODELS["1080p"], offload="block"))
        name = "Hunyuan 1.5 upscale 480p to 1080p, small GPU"
        heading = "HunyuanVideo-1.5: 480p step-distilled, upscaled to 720p and then 1080p (small GPU)"
        about = ("A fast 480p video (8 steps), then Tencent's two super-resolution steps: the 720p SR release "
                 "(after a 480p base) and the 1080p one (after a 720p base). Every transformer stores its weights "
                 "in fp8 with block offload, so a 12-16 GB GPU runs it; 1080p x 121 frames is about 250 k tokens: "
                 "the 1080p stage needs about 13.5 GB with block offload (23 GB with the whole model in fp8). "
                 "Out of memory there: lower the frames.")
        variant, fp8, offload, resolution = "auto", True, "block", "480p"
    else:
        model = "hunyuanvideo1.5_720p_i2v_cfg_distilled_fp8_scaled.safetensors"
        stages_ = (Upscale("1080p", *SR_MODELS["1080p"], offload="block"),)
        name = "Hunyuan 1.5 upscale 720p to 1080p"
        heading = "HunyuanVideo-1.5: 720p, upscaled to 1080p"
        about = ("The 720p CFG-distilled release (50 steps), then the 1080p super-resolution step (8 steps): "
                 "1280x720 becomes 1904x1072. The SR transformer streams its blocks (offload mode block): the "
                 "1080p stage needs about 13.5 GB so; with 24 GB or more, offload mode model is faster.")
        variant, fp8, offload, resolution = "i2v cfg-distilled", True, "model", "720p"
    sr_files = files_note(*[name for stage in stages_ for name in (stage.model, stage.upsampler)])
    text = f"""
## {heading}

{about}

**Files** (ComfyUI's repackaged HunyuanVideo-1.5 files), the base video's:
{files_15(model)}
and the super-resolution stage's:
{sr_files}
{SR_TAIL}{COMMON_TAIL}"""
    return local_graph(
        name, f"{heading}: the super-resolution groups are marked in green.", text, model=model, family="1.5",
        variant=variant, fp8=fp8, offload=offload, resolution=resolution, frames=121, prompt=PROMPT, negative="",
        te_fp8=True, te_device="gpu", prefix=f"video/hunyuan_i2v_1.5_{base}_to_1080p", note_height=760,
        upscales=stages_,
    )


def hunyuan13b(version: str) -> Workflow:
    if version == "v2":
        model = "hunyuan_video_v2_replace_image_to_video_720p_bf16.safetensors"
        heading = "HunyuanVideo-I2V (13 B), v2 token replace"
        about = ("The 13 B model's fixed release, recommended over v1: the start image stays the first frame. "
                 "50 steps, embedded guidance 6, flow shift 7 with *i2v stability* on (17 off).")
        release = ("- **Sample**: *embedded guidance* is v2's (0 = 6); *cfg scale* 0 = 1 = off (above 1 runs the "
                   "negative prompt: twice the work).")
        name, summary = ("Hunyuan 13B 720p (v2, recommended)",
                         "HunyuanVideo-I2V (13 B) v2 token replace, 720p, 129 frames.")
    else:
        model = "hunyuan_video_image_to_video_720p_bf16.safetensors"
        heading = "HunyuanVideo-I2V (13 B), v1 latent concat"
        about = ("The 13 B model's first release (33 input channels). Prefer v2 unless you want v1's results. "
                 "50 steps, flow shift 7 with *i2v stability* on (17 off).")
        release = ("- **Sample**: v1 uses true CFG: *cfg scale* 0 = 1 = off; above 1 the negative prompt runs "
                   "(twice the work). *embedded guidance* is ignored. Like the reference, v1 drops the first 4 "
                   "decoded frames: 129 frames give 125.")
        name, summary = ("Hunyuan 13B 720p v1 latent concat",
                         "HunyuanVideo-I2V (13 B) v1 latent concat, 720p, 129 frames (125 saved).")
    text = f"""
## {heading}

{about} 129 frames = 5.4 s at 24 fps.

**Files** (ComfyUI's repackaged HunyuanVideo files):
{files_13b(model)}
**Settings that matter**
- **Memory**: the reference needs about 60 GB at 720p × 129 frames. Here *fp8 storage* is on (13 GB of
  weights instead of 26) and *offload mode* is **block**; *resolution* 540p or 360p, or fewer frames, save
  more. With memory to spare, *offload mode* model is faster.
- **Load Text Encoders**: *fp8 storage* on (llava-llama-3 in about 9 GB); *device* cpu keeps it off the GPU.
- **Encode**: *resolution* 720p (also 540p, 360p); *width*/*height* 0 = from the image on a 32 px grid.
{release}
{COMMON_TAIL}"""
    return local_graph(
        name, summary, text, model=model, family="13b", variant="auto", fp8=True, offload="block",
        resolution="720p", frames=129, prompt=PROMPT, negative=NEGATIVE_13B, te_fp8=True, te_device="gpu",
        prefix=f"video/hunyuan_i2v_13b_{version}",
    )


def remote_graph(name: str, node_type: str, summary: str, title: str, group: str, note_text: str | None,
                 prefix: str) -> Workflow:
    """Load Image -> a WaveSpeed node (widgets at the node's defaults, a fixed random seed) -> Save Video + frames."""
    spec = NODES[node_type].INPUT_TYPES()
    widgets = {name_: entry[1].get("default") for section in ("required", "optional")
               for name_, entry in spec.get(section, {}).items() if len(entry) > 1 and "default" in entry[1]}
    widgets.update(prompt=("The cat slowly turns its head towards the camera and blinks, soft natural light, "
                           "gentle camera push-in."),
                   seed=-1, control_after_generate="fixed")
    image = Node("image", "LoadImage", dict(image="example.png"), title="Start image")
    remote = Node("remote", node_type, widgets, title=title)
    save = Node("save", "SaveVideo", dict(filename_prefix=prefix, format="auto", codec="auto"))
    frames = Node("frames", "PreviewImage", {}, title="Frames")
    columns = [
        [Group("1 · Start image", [image], GROUP_COLORS["image"])],
        [Group(group, [remote], GROUP_COLORS["remote"])],
        [Group("3 · Save", [frames, save], GROUP_COLORS["output"])],  # frames (output 0) on top: no crossing
    ]
    if note_text:
        columns.insert(0, [note(note_text, 340)])
    return Workflow(
        name=name, summary=summary, columns=columns,
        links=[("image", "IMAGE", "remote", "image"), ("remote", "video", "save", "video"),
               ("remote", "frames", "frames", "images")],
    )


REMOTE_KEY = """
**API key**: set the environment variable `WAVESPEED_API_KEY` before starting ComfyUI, or put the key alone in
`ComfyUI/user/hunyuan_i2v/wavespeed_api_key.txt`. It is never stored in the workflow. See `docs/remote.md`.
"""
REMOTE_TAIL = """- *seed* -1 = a new video on every run. A fixed seed makes the same inputs come back from the pack's
  journal instead of paying again.
- A cancelled or crashed run resumes its paid task when the same inputs are queued again.
- *timeout*: how long to wait for each video; *concurrency*: videos of a batch at once (a default account: 2).
- The MP4 is also kept under `output/wavespeed/`; Save Video writes the copy you see here.
"""


def wavespeed_13b() -> Workflow:
    text = f"""
## HunyuanVideo-I2V (13 B) on WaveSpeed (remote, paid)

No GPU and no model files: the start image and the prompt go to WaveSpeed's hosted HunyuanVideo-I2V, and the
video comes back into the graph as frames and a VIDEO. **Every new run is paid**: $0.40 a video at WaveSpeed's
published price (what WaveSpeed bills is what counts); the node's text shows the estimate.
{REMOTE_KEY}
**Settings that matter**
- *num_inference_steps* 2 to 30 (30: the best quality); *duration* 5 to 10 s; *size* auto picks `1280*720` or
  `720*1280` from the image's orientation.
- The start image is uploaded to WaveSpeed first (the endpoint takes a URL); or leave *image* unconnected and
  give a public *image_url*. *enable_safety_checker*: WaveSpeed's check of the output.
{REMOTE_TAIL}"""
    return remote_graph(
        "WaveSpeed Hunyuan 13B (paid)", "HunyuanVideoI2VWaveSpeed",
        "HunyuanVideo-I2V (13 B) on WaveSpeed (paid, about $0.40 a video). Set WAVESPEED_API_KEY or the key file "
        "before starting ComfyUI; see docs/remote.md.",
        "HunyuanVideo-I2V 13 B on WaveSpeed (paid)", "2 · WaveSpeed (paid)", text,
        "video/hunyuan_i2v_wavespeed")


def wavespeed_15() -> Workflow:
    text = f"""
## HunyuanVideo-1.5 image-to-video on WaveSpeed (remote, paid)

No GPU and no model files: the start image and the prompt go to WaveSpeed's hosted HunyuanVideo-1.5, and the
video comes back into the graph as frames and a VIDEO. **Every new run is paid**, by the second of video; the
node's text shows the estimate for the chosen resolution and duration, and WaveSpeed's model page has the price.
{REMOTE_KEY}
**Settings that matter**
- *resolution* 480p or 720p (720p costs more); *duration* 5 or 8 s; the aspect ratio follows the image.
- The start image is sent inline (no upload); or leave *image* unconnected and give a public *image_url*.
{REMOTE_TAIL}"""
    return remote_graph(
        "WaveSpeed Hunyuan 1.5 (paid)", "HunyuanVideo15I2VWaveSpeed",
        "HunyuanVideo-1.5 I2V on WaveSpeed (paid by the second of video). Set WAVESPEED_API_KEY or the key file "
        "before starting ComfyUI; see docs/remote.md.",
        "HunyuanVideo-1.5 I2V on WaveSpeed (paid)", "2 · WaveSpeed (paid)", text,
        "video/hunyuan_i2v_wavespeed_1.5")


WORKFLOWS = [hunyuan15_480p, hunyuan15_720p, hunyuan15_720p_multi_gpu, lambda: hunyuan15_upscale("480p"),
             lambda: hunyuan15_upscale("720p"), lambda: hunyuan13b("v2"),
             lambda: hunyuan13b("v1"), wavespeed_13b]
if "HunyuanVideo15I2VWaveSpeed" in NODES:  # the 1.5 endpoint's node (issue 7)
    WORKFLOWS.append(wavespeed_15)


def main() -> None:
    (OUT / "api").mkdir(parents=True, exist_ok=True)
    for make in WORKFLOWS:
        workflow = make()
        ui, api = build(workflow)
        (OUT / f"{workflow.name}.json").write_text(json.dumps(ui, indent=2, ensure_ascii=False) + "\n")
        (OUT / "api" / f"{workflow.name}.json").write_text(json.dumps(api, indent=2, ensure_ascii=False) + "\n")
        print("wrote", workflow.name)


if __name__ == "__main__":
    main()
