"""The example workflows, checked the way ComfyUI checks a prompt, plus what an artist sees when opening them.

Every ``workflows/<name>.json`` (UI format) and ``workflows/api/<name>.json`` (API format) is validated
against the pack's node definitions and a pinned copy of the core nodes' input specs (the opt-in
tests/test_workflows_comfyui.py compares the pins with a real ComfyUI's /object_info): known node
types, widget values in range or in the list, links of matching types, required inputs connected, an
output node. The UI and API files must describe the same graph. The layout must read: no two node
rectangles overlap, every working node sits inside one group, links run left to right. Each workflow has
a note naming its model files (ComfyUI's repackaged names) and a real thumbnail for the template browser.
A self-check breaks a good workflow in many ways and expects each break to be caught.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
from conftest import ROOT

from hyv_pack import NODE_CLASS_MAPPINGS as NODES
from hyv_pack import NODE_DISPLAY_NAME_MAPPINGS as DISPLAY_NAMES

FOLDER = ROOT / "workflows"
WORKFLOWS = sorted(FOLDER.glob("*.json"))
NAMES = [p.stem for p in WORKFLOWS]

# Core nodes the examples may use, as ComfyUI 0.3.64 declares them in /object_info (inputs in order).
# "FILES" marks a combo that lists the user's files.
CORE_NODES = {
    "LoadImage": {"required": {"image": ("FILES", {"image_upload": True})},
                  "output": ["IMAGE", "MASK"], "output_node": False, "display_name": "Load Image"},
    "SaveVideo": {"required": {"video": ("VIDEO", {}), "filename_prefix": ("STRING", {"default": "video/ComfyUI"}),
                               "format": (["auto", "mp4"], {"default": "auto"}),
                               "codec": (["auto", "h264"], {"default": "auto"})},
                  "output": [], "output_node": True, "display_name": "Save Video"},
    "CreateVideo": {"required": {"images": ("IMAGE", {}),
                                 "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0})},
                    "optional": {"audio": ("AUDIO", {})},
                    "output": ["VIDEO"], "output_node": False, "display_name": "Create Video"},
    "PreviewAny": {"required": {"source": ("*", {})}, "output": [], "output_node": True, "display_name": "Preview Any"},
    "PreviewImage": {"required": {"images": ("IMAGE", {})}, "output": [], "output_node": True,
                     "display_name": "Preview Image"},
}
FRONTEND_ONLY = ("Note", "MarkdownNote")  # drawn by the frontend, never sent to the server; widgets_values [text]

# Combos whose options are the user's files: any name passes ComfyUI's check once the file is there.
FILE_INPUTS = {
    ("HunyuanI2VLoadTransformer", "model_name"): "diffusion_models",
    ("HunyuanI2VLoadVAE", "vae_name"): "vae",
    ("HunyuanI2VLoadTextEncoders", "text_encoder"): "text_encoders",
    ("HunyuanI2VLoadTextEncoders", "vision"): "clip_vision",
    ("HunyuanI2VLoadTextEncoders", "text_encoder_2"): "text_encoders",
    ("HunyuanI2VLoRA", "lora_name"): "loras",
    ("HunyuanI2VLoadLatentUpsampler", "upsampler_name"): "latent_upscale_models",
    ("LoadImage", "image"): "input",
}
# ComfyUI's repackaged files (Comfy-Org's HunyuanVideo and HunyuanVideo-1.5 repackages, as the README lists
# them), by family and folder.
REPACKAGED = {
    "HunyuanVideo-1.5": {
        "diffusion_models": {f"hunyuanvideo1.5_{r}_i2v_{k}.safetensors" for r in ("480p", "720p")
                             for k in ("fp16", "fp8_scaled")}
        | {"hunyuanvideo1.5_480p_i2v_step_distilled_fp8_scaled.safetensors",
           "hunyuanvideo1.5_720p_i2v_cfg_distilled_fp8_scaled.safetensors"}
        | {f"hunyuanvideo1.5_{r}_sr_distilled_{k}.safetensors" for r in ("720p", "1080p") for k in ("fp16", "fp8_scaled")},
        "latent_upscale_models": {f"hunyuanvideo15_latent_upsampler_{r}.safetensors" for r in ("720p", "1080p")},
        "vae": {"hunyuanvideo15_vae_fp16.safetensors"},
        "text_encoders": {"qwen_2.5_vl_7b_fp8_scaled.safetensors", "byt5_small_glyphxl_fp16.safetensors"},
        "clip_vision": {"sigclip_vision_patch14_384.safetensors"},
    },
    "HunyuanVideo-I2V (13 B)": {
        "diffusion_models": {"hunyuan_video_v2_replace_image_to_video_720p_bf16.safetensors",
                             "hunyuan_video_image_to_video_720p_bf16.safetensors"},
        "vae": {"hunyuan_video_vae_bf16.safetensors"},
        "text_encoders": {"llava_llama3_fp8_scaled.safetensors", "llava_llama3_fp16.safetensors",
                          "clip_l.safetensors"},
        "clip_vision": {"llava_llama3_vision.safetensors"},
    },
}
OPEN_FIRST = "Hunyuan 1.5 480p, small GPU (start here)"

WIDGET_KINDS = ("INT", "FLOAT", "STRING", "BOOLEAN")
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
NODE_TITLE_H = 30  # LiteGraph draws the title bar above pos
# What ComfyUI's frontend 1.27 computes as the least size of these nodes (measured with
# tools/screenshot_workflows.py); a node stored smaller is drawn bigger and may cover its neighbours.
FRONTEND_MIN_SIZE = {
    "HunyuanI2VLoadTransformer": (272, 198), "HunyuanI2VLoadVAE": (223, 82), "HunyuanI2VLoadTextEncoders": (285, 178),
    "HunyuanI2VEncode": (293, 254), "HunyuanI2VSample": (217, 294), "HunyuanI2VDecode": (210, 126),
    "HunyuanVideoI2VWaveSpeed": (293, 388), "HunyuanVideo15I2VWaveSpeed": (210, 340), "LoadImage": (215, 326),
    "SaveVideo": (210, 106),
    "PreviewAny": (210, 88), "PreviewImage": (140, 26), "MarkdownNote": (210, 88), "Note": (210, 88),
}


# ====================================================================== node definitions

def spec(node_type: str) -> dict | None:
    """{"required", "optional", "output", "output_node", "display_name"} of a pack or pinned core node."""
    if node_type in CORE_NODES:
        return CORE_NODES[node_type]
    cls = NODES.get(node_type)
    if cls is None:
        return None
    declared = cls.INPUT_TYPES()
    return {"required": declared.get("required", {}), "optional": declared.get("optional", {}),
            "output": list(cls.RETURN_TYPES), "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
            "display_name": DISPLAY_NAMES[node_type]}


def inputs_of(definition: dict) -> list[tuple[str, object, dict, bool]]:
    """(name, type, options, required) in declaration order."""
    found = []
    for section in ("required", "optional"):
        for name, entry in definition.get(section, {}).items():
            found.append((name, entry[0], entry[1] if len(entry) > 1 else {}, section == "required"))
    return found


def is_widget(kind) -> bool:
    return isinstance(kind, list) or kind in WIDGET_KINDS or kind == "FILES"


def extra_values(name: str, kind, options: dict) -> list[str]:
    """Values the frontend stores after a widget's own: the seed's control, the upload button."""
    extra = []
    if kind == "INT" and (options.get("control_after_generate") or name in ("seed", "noise_seed")):
        extra.append("control_after_generate")
    if options.get("image_upload"):
        extra.append("upload")
    return extra


def types_match(a: str, b: str) -> bool:
    return a == b or "*" in (a, b)


def check_value(where: str, node_type: str, name: str, value, kind, options: dict) -> list[str]:
    """What ComfyUI's validate_inputs says about one widget value (plus the INT step the frontend keeps)."""
    if (node_type, name) in FILE_INPUTS or kind == "FILES":
        return [] if isinstance(value, str) and value else [f"{where}: {value!r} is not a file name"]
    if isinstance(kind, list):
        return [] if value in kind else [f"{where}: {value!r} is not one of {kind}"]
    if kind == "BOOLEAN":
        return [] if isinstance(value, bool) else [f"{where}: {value!r} is not a boolean"]
    if kind == "STRING":
        return [] if isinstance(value, str) else [f"{where}: {value!r} is not a string"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind == "INT" and value != int(value)):
        return [f"{where}: {value!r} is not {'an integer' if kind == 'INT' else 'a number'}"]
    problems = []
    if "min" in options and value < options["min"]:
        problems.append(f"{where}: {value} is below min {options['min']}")
    if "max" in options and value > options["max"]:
        problems.append(f"{where}: {value} is above max {options['max']}")
    if kind == "INT" and options.get("step", 1) > 1 and (value - options.get("min", 0)) % options["step"]:
        problems.append(f"{where}: {value} is off the step {options['step']} from {options.get('min', 0)}")
    return problems


# ====================================================================== UI format

def widget_map(node: dict, definition: dict) -> tuple[dict, list[str]]:
    """widgets_values by input name, and what does not fit."""
    where = f"node {node['id']} ({node['type']})"
    values = list(node.get("widgets_values") or [])
    mapped, problems = {}, []
    for name, kind, options, _ in inputs_of(definition):
        if not is_widget(kind):
            continue
        if not values:
            return mapped, problems + [f"{where}: no widget value for '{name}'"]
        mapped[name] = values.pop(0)
        for extra in extra_values(name, kind, options):
            if not values:
                return mapped, problems + [f"{where}: '{name}' lacks its {extra} value"]
            value = values.pop(0)
            if extra == "control_after_generate" and value not in CONTROL_VALUES:
                problems.append(f"{where}: control value {value!r} is not one of {CONTROL_VALUES}")
            if extra == "upload" and value != "image":
                problems.append(f"{where}: the upload button stores 'image', not {value!r}")
    if values:
        problems.append(f"{where}: {len(values)} widget values too many: {values!r}")
    return mapped, problems


def check_ui(graph: dict) -> list[str]:
    """What ComfyUI (frontend and prompt validation) would object to in a UI-format workflow."""
    problems = []
    if graph.get("version") != 0.4:
        problems.append(f"version {graph.get('version')} (want 0.4)")
    nodes = {node["id"]: node for node in graph["nodes"]}
    links = {link[0]: link for link in graph["links"]}
    if len(nodes) != len(graph["nodes"]) or len(links) != len(graph["links"]):
        problems.append("node or link ids repeat")
    if graph.get("last_node_id", 0) < max(nodes) or graph.get("last_link_id", 0) < max(links, default=0):
        problems.append("last_node_id / last_link_id below the ids in use")
    outputs_used = False
    for node in graph["nodes"]:
        kind, where = node["type"], f"node {node['id']} ({node['type']})"
        if kind in FRONTEND_ONLY:
            if not (len(node.get("widgets_values", [])) == 1 and isinstance(node["widgets_values"][0], str)):
                problems.append(f"{where}: a note holds one text")
            continue
        definition = spec(kind)
        if definition is None:
            problems.append(f"{where}: unknown node type (neither the pack's nor a pinned core node)")
            continue
        mapped, found = widget_map(node, definition)
        problems += found
        declared = {name: (k, o, r) for name, k, o, r in inputs_of(definition)}
        for name, value in mapped.items():
            k, options, _ = declared[name]
            problems += check_value(f"{where} {name}", kind, name, value, k, options)
        linked = set()
        for slot in node.get("inputs", []):
            name = slot.get("widget", {}).get("name", slot["name"])
            if name not in declared:
                problems.append(f"{where}: input '{name}' is not declared")
                continue
            k = declared[name][0]
            if not is_widget(k) and not types_match(slot["type"], k):
                problems.append(f"{where}: input '{name}' is typed {slot['type']}, declared {k}")
            if slot.get("link") is not None:
                linked.add(name)
                if slot["link"] not in links:
                    problems.append(f"{where}: input '{name}' names missing link {slot['link']}")
        missing = [n for n, (k, _, required) in declared.items() if required and not is_widget(k) and n not in linked]
        if missing:
            problems.append(f"{where}: required inputs not connected: {missing}")
        if [o["type"] for o in node.get("outputs", [])] != definition["output"]:
            problems.append(f"{where}: outputs {[o['type'] for o in node.get('outputs', [])]}, "
                            f"declared {definition['output']}")
        for slot in node.get("outputs", []):
            for link_id in slot.get("links") or []:
                if link_id not in links:
                    problems.append(f"{where}: output '{slot['name']}' names missing link {link_id}")
        outputs_used |= definition["output_node"] and not missing
    if not outputs_used:
        problems.append("no output node: ComfyUI refuses the prompt")
    for link_id, src, src_slot, dst, dst_slot, kind in graph["links"]:
        where = f"link {link_id}"
        if src not in nodes or dst not in nodes:
            problems.append(f"{where}: joins a missing node")
            continue
        source, target = nodes[src], nodes[dst]
        if target["type"] in FRONTEND_ONLY or source["type"] in FRONTEND_ONLY:
            problems.append(f"{where}: notes take no links")
            continue
        out_types = (spec(source["type"]) or {}).get("output", [])
        if src_slot >= len(out_types) or not types_match(out_types[src_slot], kind):
            problems.append(f"{where}: carries {kind}, node {src} output {src_slot} is "
                            f"{out_types[src_slot] if src_slot < len(out_types) else 'missing'}")
        if src_slot >= len(source["outputs"]) or link_id not in (source["outputs"][src_slot].get("links") or []):
            problems.append(f"{where}: node {src} output {src_slot} does not list it")
        if dst_slot >= len(target["inputs"]) or target["inputs"][dst_slot].get("link") != link_id:
            problems.append(f"{where}: node {dst} input slot {dst_slot} does not name it")
            continue
        name = target["inputs"][dst_slot]["name"]
        declared = {n: k for n, k, _, _ in inputs_of(spec(target["type"]) or {})}
        if name in declared and not types_match(kind, declared[name]):
            problems.append(f"{where}: carries {kind} into {target['type']}.{name}, which takes {declared[name]}")
    return problems


def ui_to_api(graph: dict) -> dict:
    """The prompt the frontend queues for a UI-format workflow."""
    links = {link[0]: link for link in graph["links"]}
    prompt = {}
    for node in graph["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        definition = spec(node["type"])
        inputs, _ = widget_map(node, definition)
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                link = links[slot["link"]]
                inputs[slot["name"]] = [str(link[1]), link[2]]
        # The frontend copies the pack id and version into the prompt's _meta.
        stamp = {k: v for k, v in node.get("properties", {}).items() if k in ("cnr_id", "aux_id", "ver")}
        prompt[str(node["id"])] = {"inputs": inputs, "class_type": node["type"],
                                   "_meta": {"title": node.get("title") or definition["display_name"], **stamp}}
    return prompt


# ====================================================================== API format

def check_api(prompt: dict) -> list[str]:
    """What POST /prompt would refuse in an API-format workflow."""
    problems, outputs_used = [], False
    for node_id, node in prompt.items():
        where = f"api node {node_id} ({node.get('class_type')})"
        definition = spec(node.get("class_type"))
        if definition is None:
            problems.append(f"{where}: unknown class_type")
            continue
        declared = inputs_of(definition)
        unknown = set(node["inputs"]) - {name for name, *_ in declared}
        if unknown:
            problems.append(f"{where}: undeclared inputs {sorted(unknown)}")
        complete = True
        for name, kind, options, required in declared:
            if name not in node["inputs"]:
                if required:
                    problems.append(f"{where}: required input '{name}' missing")
                    complete = False
                continue
            value = node["inputs"][name]
            if isinstance(value, list) and not isinstance(kind, list):  # a link [node id, output slot]
                source = prompt.get(str(value[0]))
                out_types = (spec(source["class_type"]) or {}).get("output", []) if source else []
                if len(value) != 2 or source is None or value[1] >= len(out_types):
                    problems.append(f"{where}: '{name}' links to a missing node or output {value}")
                elif not types_match(out_types[value[1]], "FILES" if kind == "FILES" else kind):
                    problems.append(f"{where}: '{name}' takes {kind}, gets {out_types[value[1]]}")
            elif not is_widget(kind):
                problems.append(f"{where}: '{name}' ({kind}) must be a link")
            else:
                problems += check_value(f"{where} {name}", node["class_type"], name, value, kind, options)
        outputs_used |= definition["output_node"] and complete
    if not outputs_used:
        problems.append("no output node: ComfyUI refuses the prompt")
    return problems


# ====================================================================== layout

def rect(node: dict) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a node as drawn, title bar included."""
    x, y = node["pos"]
    w, h = node["size"]
    return x, y - NODE_TITLE_H, x + w, y + h


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def inside(inner, outer) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def check_layout(graph: dict) -> list[str]:
    problems = []
    nodes = {node["id"]: node for node in graph["nodes"]}
    for node in graph["nodes"]:
        least = FRONTEND_MIN_SIZE.get(node["type"])
        if least and (node["size"][0] < least[0] or node["size"][1] < least[1]):
            problems.append(f"node {node['id']} ({node['type']}): size {node['size']} is below the {least} "
                            "the frontend draws")
        title = node.get("title") or (spec(node["type"]) or {}).get("display_name", node["type"])
        if len(title) * 7.5 + 50 > node["size"][0]:  # the frontend widens a node to fit its title
            problems.append(f"node {node['id']}: title {title!r} is too long for width {node['size'][0]}")
    ordered = list(nodes.values())
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if overlap(rect(a), rect(b)):
                problems.append(f"nodes {a['id']} ({a['type']}) and {b['id']} ({b['type']}) overlap")
    groups = graph.get("groups", [])
    boxes = []
    for group in groups:
        x, y, w, h = group["bounding"]
        boxes.append((x, y, x + w, y + h))
        if len(group["title"]) * 0.6 * group.get("font_size", 24) + 10 > w:
            problems.append(f"group {group['title']!r}: the title is wider than the group")
    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            if overlap(a, boxes[j]):
                problems.append(f"groups {groups[i]['title']!r} and {groups[j]['title']!r} overlap")
    for node in graph["nodes"]:
        box = rect(node)
        holders = [i for i, g in enumerate(boxes) if overlap(box, g)]
        where = f"node {node['id']} ({node['type']})"
        if node["type"] in FRONTEND_ONLY and not holders:
            continue
        if len(holders) != 1:
            problems.append(f"{where}: in {len(holders)} groups (want exactly one)")
            continue
        group, title_h = boxes[holders[0]], groups[holders[0]].get("font_size", 24) + 10
        if not inside(box, group):
            problems.append(f"{where}: sticks out of group {groups[holders[0]]['title']!r}")
        elif box[1] < group[1] + title_h:
            problems.append(f"{where}: covers the title of group {groups[holders[0]]['title']!r}")
    for link_id, src, _, dst, _, _ in graph["links"]:
        if not nodes[src]["pos"][0] < nodes[dst]["pos"][0]:
            problems.append(f"link {link_id}: runs right to left (node {src} -> node {dst})")
    return problems


# ====================================================================== files and notes

def model_files(graph: dict) -> list[tuple[str, str, str]]:
    """(folder, file, node type) of every model file the loaders name."""
    found = []
    for node in graph["nodes"]:
        definition = spec(node["type"])
        if definition is None or node["type"] in CORE_NODES:
            continue
        mapped, _ = widget_map(node, definition)
        for name, value in mapped.items():
            folder = FILE_INPUTS.get((node["type"], name))
            if folder and folder != "input":
                found.append((folder, value, node["type"]))
    return found


def check_files_and_note(name: str, graph: dict) -> list[str]:
    problems = []
    files = model_files(graph)
    families = [family for family, folders in REPACKAGED.items()
                if files and all(value in folders.get(folder, ()) for folder, value, _ in files)]
    if files and len(families) != 1:
        unknown = [f"{folder}/{value}" for folder, value, _ in files
                   if not any(value in folders.get(folder, ()) for folders in REPACKAGED.values())]
        problems.append(f"model files are not one family's repackaged files (unknown: {unknown})")
    notes = [node for node in graph["nodes"] if node["type"] in FRONTEND_ONLY]
    if len(notes) != 1:
        return problems + [f"{len(notes)} notes (want one)"]
    text = notes[0]["widgets_values"][0]
    for folder, value, _ in files:
        if value not in text or f"{folder}/" not in text:
            problems.append(f"the note does not say where {value} goes ({folder}/)")
    if len(text) < 400:
        problems.append("the note is too short to explain the settings that matter")
    return problems


# ====================================================================== tests

@pytest.fixture(scope="module", params=NAMES)
def workflow(request):
    name = request.param
    ui = json.loads((FOLDER / f"{name}.json").read_text())
    return name, ui, json.loads((FOLDER / "api" / f"{name}.json").read_text())


def test_every_workflow_has_its_api_file_and_thumbnail():
    assert {p.stem for p in (FOLDER / "api").glob("*.json")} == set(NAMES)
    assert {p.stem for p in FOLDER.glob("*.jpg")} == set(NAMES)
    assert OPEN_FIRST in NAMES


def test_ui_workflow_fits_the_nodes(workflow):
    name, graph, _ = workflow
    problems = check_ui(graph)
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_api_workflow_fits_the_nodes(workflow):
    name, _, prompt = workflow
    problems = check_api(prompt)
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_ui_and_api_files_describe_the_same_graph(workflow):
    name, graph, prompt = workflow
    assert ui_to_api(graph) == prompt, name


def test_layout_reads_left_to_right_without_overlaps(workflow):
    name, graph, _ = workflow
    problems = check_layout(graph)
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_repackaged_file_names_and_a_note_that_says_where_they_go(workflow):
    name, graph, _ = workflow
    problems = check_files_and_note(name, graph)
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_thumbnail_is_a_picture_of_the_graph(workflow):
    from PIL import Image, ImageStat

    name = workflow[0]
    with Image.open(FOLDER / f"{name}.jpg") as image:
        assert image.format == "JPEG"
        assert 400 <= image.width <= 1600 and 200 <= image.height <= 1600, image.size
        gray = image.convert("L")
        # A placeholder is near 0; the widest graphs (super-resolution) show the most bare canvas, about 14.
        assert ImageStat.Stat(gray).stddev[0] > 12, "a flat image: a placeholder, not a screenshot"
        assert len(gray.getcolors(256 * 256) or range(256)) > 64
    assert (FOLDER / f"{name}.jpg").stat().st_size < 400_000


def test_small_gpu_workflow_has_the_small_gpu_settings():
    graph = json.loads((FOLDER / f"{OPEN_FIRST}.json").read_text())
    by_type = {node["type"]: widget_map(node, spec(node["type"]))[0] for node in graph["nodes"]
               if node["type"] not in FRONTEND_ONLY}
    transformer = by_type["HunyuanI2VLoadTransformer"]
    assert transformer["model_name"] == "hunyuanvideo1.5_480p_i2v_step_distilled_fp8_scaled.safetensors"
    assert transformer["fp8_storage"] and transformer["offload_mode"] == "block"
    assert by_type["HunyuanI2VLoadTextEncoders"]["fp8_storage"]
    assert by_type["HunyuanI2VDecode"]["tiling"]
    assert by_type["HunyuanI2VEncode"]["resolution"] == "480p"


def test_every_path_and_family_has_a_workflow():
    """Local: both families, each release's file; remote: every WaveSpeed node the pack has."""
    seen = set()
    for path in WORKFLOWS:
        graph = json.loads(path.read_text())
        types = {node["type"] for node in graph["nodes"]}
        files = {value for _, value, _ in model_files(graph)}
        seen |= types
        for family, folders in REPACKAGED.items():
            if files and files <= set().union(*folders.values()):
                seen.add(family)
        seen |= {f for f in files if f.startswith(("hunyuan_video_image_to_video", "hunyuan_video_v2_replace",
                                                 "hunyuanvideo1.5_480p", "hunyuanvideo1.5_720p"))}
    assert set(REPACKAGED) <= seen
    remote = {name for name in NODES if "WaveSpeed" in name}
    assert remote and remote <= seen, remote - seen
    for prefix in ("hunyuan_video_image_to_video", "hunyuan_video_v2_replace", "hunyuanvideo1.5_480p",
                   "hunyuanvideo1.5_720p"):
        assert any(f.startswith(prefix) for f in seen), prefix


def test_no_secrets_or_absolute_paths_in_workflows():
    for path in [*WORKFLOWS, *sorted((FOLDER / "api").glob("*.json"))]:
        text = path.read_text()
        assert "Bearer" not in text and not re.search(r'"(api_?key|token|secret)"\s*:', text, re.I), path.name
        assert ":\\\\" not in text and "/home/" not in text and "/root/" not in text and "/tmp/" not in text, path.name


# ---------------------------------------------------------------------- the checks catch what they claim to

def _node(graph, node_type):
    return next(node for node in graph["nodes"] if node["type"] == node_type)


def _set_widget(node_type, name, value):
    def change(graph):
        node = _node(graph, node_type)
        order = [n for n, k, o, _ in inputs_of(spec(node_type)) if is_widget(k) for n in [n] + extra_values(n, k, o)]
        node["widgets_values"][order.index(name)] = value
    return change


def _drop_outputs(graph):
    for node_type in ("SaveVideo", "PreviewAny"):
        node = _node(graph, node_type)
        graph["nodes"].remove(node)
        graph["links"] = [link for link in graph["links"] if link[3] != node["id"]]
    for node in graph["nodes"]:
        for slot in node["outputs"]:
            slot["links"] = [i for i in slot["links"] if i in {link[0] for link in graph["links"]}]


UI_BREAKS = {
    "an unknown node type": lambda g: _node(g, "HunyuanI2VDecode").update(type="HunyuanI2VDecodeOld"),
    "a widget value missing": lambda g: _node(g, "HunyuanI2VSample")["widgets_values"].pop(),
    "a widget value too many": lambda g: _node(g, "HunyuanI2VDecode")["widgets_values"].append(1),
    "the seed's control value missing": lambda g: _node(g, "HunyuanI2VSample")["widgets_values"].pop(1),
    "a bad control value": _set_widget("HunyuanI2VSample", "control_after_generate", "sometimes"),
    "an unknown combo option": _set_widget("HunyuanI2VSample", "cache", "turbo"),
    "a core combo option": _set_widget("SaveVideo", "codec", "vp9"),
    "below min": _set_widget("HunyuanI2VSample", "steps", -1),
    "above max": _set_widget("HunyuanI2VEncode", "width", 99999),
    "frames off the 4n+1 grid": _set_widget("HunyuanI2VSample", "frames", 10),
    "a string for a number": _set_widget("HunyuanI2VSample", "flow_shift", "7"),
    "a number for a boolean": _set_widget("HunyuanI2VDecode", "tiling", 1),
    "a bad upload value": _set_widget("LoadImage", "upload", "example.png"),
    "a wrong link type": lambda g: [link.__setitem__(5, "IMAGE") for link in g["links"] if link[5] == "VIDEO"],
    "a wrong output type": lambda g: _node(g, "HunyuanI2VLoadVAE")["outputs"][0].update(type="VAE"),
    "an unconnected required input": lambda g: _node(g, "HunyuanI2VDecode")["inputs"][1].update(link=None),
    "no output node": _drop_outputs,
}
LAYOUT_BREAKS = {
    "two nodes overlap": lambda g: _node(g, "LoadImage").update(
        pos=list(_node(g, "HunyuanI2VLoadTextEncoders")["pos"])),
    "a node half out of its group": lambda g: _node(g, "HunyuanI2VSample")["pos"].__setitem__(0, _node(
        g, "HunyuanI2VSample")["pos"][0] - 60),
    "a node outside every group": lambda g: _node(g, "HunyuanI2VSample").update(pos=[5000, 5000]),
    "a link running right to left": lambda g: _node(g, "SaveVideo").update(pos=[-2000, 5000]),
    "a node smaller than the frontend draws it": lambda g: _node(g, "HunyuanI2VSample").update(size=[200, 100]),
    "a title too long for the node": lambda g: _node(g, "HunyuanI2VDecode").update(title="x" * 60),
}


def test_the_checks_catch_broken_workflows():
    name = "Hunyuan 13B 720p (v2, recommended)"
    good = json.loads((FOLDER / f"{name}.json").read_text())
    prompt = json.loads((FOLDER / "api" / f"{name}.json").read_text())
    assert not check_ui(good) and not check_layout(good) and not check_api(prompt)
    silent = []
    for label, change in {**UI_BREAKS, **LAYOUT_BREAKS}.items():
        graph = copy.deepcopy(good)
        change(graph)
        checks = check_layout if label in LAYOUT_BREAKS else check_ui
        if not checks(graph):
            silent.append(label)
    api_breaks = {
        "an unknown class": lambda p: p["7" if "7" in p else next(iter(p))].update(class_type="Nope"),
        "a link to a missing node": lambda p: next(n for n in p.values() if n["class_type"] == "HunyuanI2VDecode")[
            "inputs"].update(latent=["99", 0]),
        "a link of the wrong type": lambda p: next(n for n in p.values() if n["class_type"] == "HunyuanI2VDecode")[
            "inputs"].update(latent=[next(k for k, n in p.items() if n["class_type"] == "HunyuanI2VLoadVAE"), 0]),
        "a required input missing": lambda p: next(n for n in p.values() if n["class_type"] == "HunyuanI2VSample")[
            "inputs"].pop("steps"),
        "a value out of range": lambda p: next(n for n in p.values() if n["class_type"] == "HunyuanI2VSample")[
            "inputs"].update(cfg_scale=99.0),
    }
    for label, change in api_breaks.items():
        broken = copy.deepcopy(prompt)
        change(broken)
        if not check_api(broken):
            silent.append(label)
    changed = copy.deepcopy(prompt)
    next(n for n in changed.values() if n["class_type"] == "HunyuanI2VSample")["inputs"]["steps"] = 7
    if ui_to_api(good) == changed:
        silent.append("UI and API files that differ")
    renamed = copy.deepcopy(good)
    _set_widget("HunyuanI2VLoadVAE", "vae_name", "hunyuan_video_vae.safetensors")(renamed)
    if not check_files_and_note(name, renamed):
        silent.append("a model file that is not a repackaged name")
    assert not silent, f"the workflow checks missed: {silent}"


# ====================================================================== template browser and registry id

def test_template_browser_lists_the_workflow_to_open_first_on_top_with_titles_for_names():
    """ComfyUI's template browser shows a pack's workflow by its file name, as its title, in the order the
    server lists the folder: A-Z on Windows (NTFS), and under the browser's own A-Z sort everywhere."""
    assert sorted(NAMES)[0] == OPEN_FIRST and sorted(NAMES, key=str.casefold)[0] == OPEN_FIRST
    for name in NAMES:
        assert re.fullmatch(r"[A-Z][A-Za-z0-9 .,()-]+", name), f"{name!r}: not a title (or a character some OS forbids)"
        assert not name[0].isdigit(), "the browser's A-Z sort puts titles starting with a digit last"
    # A card shows the first line of its title, about 28 characters; the rest is in its tooltip.
    assert len({name[:28] for name in NAMES}) == len(NAMES), "two titles look the same on their cards"


def test_every_pack_node_carries_the_registry_id_and_version():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for path in WORKFLOWS:
        graph = json.loads(path.read_text())
        prompt = json.loads((FOLDER / "api" / path.name).read_text())
        for node in graph["nodes"]:
            properties = node.get("properties", {})
            if node["type"] in NODES:
                assert properties.get("cnr_id") == project["name"], f"{path.name}: node {node['id']} {properties}"
                assert properties.get("ver") == project["version"], f"{path.name}: node {node['id']} {properties}"
                assert prompt[str(node["id"])]["_meta"]["cnr_id"] == project["name"]
            else:
                assert not {"cnr_id", "aux_id"} & set(properties), f"{path.name}: core node {node['type']} stamped"
