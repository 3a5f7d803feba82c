"""The remote example workflows load in ComfyUI: widgets match INPUT_TYPES, links match types."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hyv_pack.nodes.wavespeed_node import NODE_CLASS_MAPPINGS as REMOTE_NODES

FOLDER = Path(__file__).resolve().parents[1] / "workflows"
# The 13 B example, and every other workflow built on a WaveSpeed node (the 1.5 one).
WORKFLOWS = sorted({FOLDER / "WaveSpeed Hunyuan 13B (paid).json"} | {
    path for path in FOLDER.glob("*.json") if any(f'"type": "{name}"' in path.read_text(encoding="utf-8")
                                                   for name in REMOTE_NODES)})
FRONTEND_ONLY = {"Note", "MarkdownNote"}  # drawn by the frontend, never sent to the server
# What each endpoint's example must be set to: the endpoint's defaults, which the published prices assume.
EXPECTED = {"HunyuanVideoI2VWaveSpeed": {"num_inference_steps": 30, "duration": 5, "size": "auto"},
            "HunyuanVideo15I2VWaveSpeed": {"resolution": "720p", "duration": 5}}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
SEED_CONTROLS = {"fixed", "increment", "decrement", "randomize"}

# The core nodes the graph uses, as ComfyUI defines them (nodes.py, comfy_extras/nodes_video.py).
CORE_NODES = {
    "LoadImage": {"inputs": {}, "outputs": ["IMAGE", "MASK"], "widgets": 2},
    "SaveVideo": {"inputs": {"video": "VIDEO"}, "outputs": [], "widgets": 3,
                  "options": {1: {"auto", "mp4"}, 2: {"auto", "h264"}}},
    "PreviewImage": {"inputs": {"images": "IMAGE"}, "outputs": [], "widgets": 0},
}


@pytest.fixture(scope="module", params=WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def workflow(request):
    return request.param


@pytest.fixture(scope="module")
def graph(workflow):
    return json.loads(workflow.read_text(encoding="utf-8"))


def remote_node(graph):
    [node] = [n for n in graph["nodes"] if n["type"] in REMOTE_NODES]
    return node, REMOTE_NODES[node["type"]]


def expected_widgets(spec):
    """(name, type, options, is seed control) in the order the frontend stores widget values."""
    widgets = []
    for section in ("required", "optional"):
        for name, (kind, *rest) in spec.get(section, {}).items():
            options = rest[0] if rest else {}
            if isinstance(kind, list):
                widgets.append((name, "COMBO", {"choices": kind, **options}, False))
            elif kind in WIDGET_TYPES:
                widgets.append((name, kind, options, False))
                if options.get("control_after_generate"):
                    widgets.append((f"{name} control", "CONTROL", {}, True))
    return widgets


def check_widget(name, kind, options, value):
    if kind == "CONTROL":
        assert value in SEED_CONTROLS, name
    elif kind == "COMBO":
        assert value in options["choices"], name
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), name
    elif kind == "STRING":
        assert isinstance(value, str), name
    else:
        assert isinstance(value, (int, float)) and not isinstance(value, bool), name
        if kind == "INT":
            assert value == int(value), name
        assert options.get("min", value) <= value <= options.get("max", value), name


def test_format_is_the_ui_graph_v0_4(graph):
    for key in ("last_node_id", "last_link_id", "nodes", "links", "groups", "config", "extra", "version"):
        assert key in graph
    assert graph["version"] == 0.4
    assert graph["last_node_id"] >= max(n["id"] for n in graph["nodes"])
    assert graph["last_link_id"] >= max(link[0] for link in graph["links"])
    assert len({n["id"] for n in graph["nodes"]}) == len(graph["nodes"])
    for node in graph["nodes"]:
        assert {"id", "type", "pos", "size", "inputs", "outputs", "widgets_values"} <= set(node)


def test_only_core_nodes_and_ours(graph):
    node, _ = remote_node(graph)
    assert {n["type"] for n in graph["nodes"]} - FRONTEND_ONLY == set(CORE_NODES) | {node["type"]}


def test_our_widgets_follow_input_types_order_and_ranges(graph):
    node, cls = remote_node(graph)
    expected = expected_widgets(cls.INPUT_TYPES())
    values = node["widgets_values"]
    assert len(values) == len(expected)
    for (name, kind, options, _), value in zip(expected, values):
        check_widget(name, kind, options, value)
    named = {name: value for (name, *_), value in zip(expected, values)}
    assert {k: named[k] for k in EXPECTED[node["type"]]} == EXPECTED[node["type"]]
    assert named["prompt"].strip()


def test_our_slots_match_return_types(graph):
    node, cls = remote_node(graph)
    assert [o["type"] for o in node["outputs"]] == list(cls.RETURN_TYPES)
    assert [o["name"] for o in node["outputs"]] == list(cls.RETURN_NAMES)
    spec = cls.INPUT_TYPES()
    declared = {name: kind for section in ("required", "optional") for name, (kind, *_) in spec[section].items()}
    for slot in node["inputs"]:
        assert declared[slot["name"]] == slot["type"]


def test_core_nodes_widgets(graph):
    for node in graph["nodes"]:
        core = CORE_NODES.get(node["type"])
        if core is None:
            continue
        assert len(node["widgets_values"]) == core["widgets"], node["type"]
        for index, allowed in core.get("options", {}).items():
            assert node["widgets_values"][index] in allowed
        assert [o["type"] for o in node["outputs"]] == core["outputs"]
        assert {i["name"]: i["type"] for i in node["inputs"]} == core["inputs"]


def test_links_connect_matching_types(graph):
    nodes = {n["id"]: n for n in graph["nodes"]}
    for link_id, source, source_slot, target, target_slot, kind in graph["links"]:
        output = nodes[source]["outputs"][source_slot]
        target_input = nodes[target]["inputs"][target_slot]
        assert output["type"] == kind == target_input["type"], link_id
        assert link_id in (output["links"] or []) and target_input["link"] == link_id
    linked = {link[0] for link in graph["links"]}
    for node in graph["nodes"]:
        for slot in node["inputs"]:
            assert slot["link"] is None or slot["link"] in linked
        for slot in node["outputs"]:
            assert set(slot["links"] or []) <= linked
    # The graph reads left to right: every link goes rightwards.
    assert all(nodes[s]["pos"][0] < nodes[t]["pos"][0] for _, s, _, t, _, _ in graph["links"])


def test_an_output_node_saves_the_video(graph):
    targets = {nodes["type"] for nodes in graph["nodes"]}
    assert "SaveVideo" in targets and remote_node(graph)[1].OUTPUT_NODE


def test_there_is_an_example_for_every_endpoint():
    shown = {remote_node(json.loads(path.read_text(encoding="utf-8")))[0]["type"] for path in WORKFLOWS}
    assert shown == set(REMOTE_NODES)


def test_no_key_in_the_workflow(workflow):
    text = workflow.read_text(encoding="utf-8")
    assert "bearer" not in text.lower() and '"api_key"' not in text.lower()
    # API keys are long unbroken tokens mixing letters and digits; none may sit in a shared file.
    tokens = [t for t in re.findall(r"[A-Za-z0-9_]{20,}", text) if sum(c.isdigit() for c in t) >= 4]
    assert not tokens
