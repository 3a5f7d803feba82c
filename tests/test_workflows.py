"""Example workflows open in ComfyUI: known node types, widget values that fit, typed links."""

import json
import re
from pathlib import Path

import pytest
from conftest import ROOT

from hyv_pack import NODE_CLASS_MAPPINGS as NODES

# Core nodes the examples use, with their widget inputs (checked against a real
# ComfyUI by the opt-in integration test).
CORE_WIDGETS = {"LoadImage": 2, "SaveVideo": 3, "PreviewAny": 0, "PreviewImage": 0, "CreateVideo": 1}
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))


def widget_inputs(cls):
    spec = cls.INPUT_TYPES()
    widgets = []
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            kind = entry[0]
            if isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN"):
                widgets.append((name, entry))
    return widgets


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_fits_the_nodes(path: Path, comfy_models):
    graph = json.loads(path.read_text())
    assert graph["version"] == 0.4
    nodes = {n["id"]: n for n in graph["nodes"]}
    for node in graph["nodes"]:
        kind = node["type"]
        assert kind in NODES or kind in CORE_WIDGETS, f"{path.name}: unknown node {kind}"
        if kind not in NODES:
            assert len(node.get("widgets_values", [])) == CORE_WIDGETS[kind], kind
            continue
        values = list(node["widgets_values"])
        for name, (widget, *rest) in widget_inputs(NODES[kind]):
            options = rest[0] if rest else {}
            value = values.pop(0)
            if isinstance(widget, list):
                # Model lists depend on the user's folders; fixed option lists must match.
                if name not in ("model_name", "vae_name", "text_encoder", "vision", "text_encoder_2"):
                    assert value in widget, (kind, name, value)
            elif widget in ("INT", "FLOAT"):
                assert options["min"] <= value <= options["max"], (kind, name, value)
                if options.get("control_after_generate"):
                    assert values.pop(0) in ("fixed", "increment", "decrement", "randomize")
            elif widget == "BOOLEAN":
                assert isinstance(value, bool), (kind, name)
            else:
                assert isinstance(value, str), (kind, name)
        assert not values, f"{kind}: {len(values)} widget values too many"
    for link_id, src, src_slot, dst, dst_slot, kind in graph["links"]:
        out = nodes[src]["outputs"][src_slot]
        inp = nodes[dst]["inputs"][dst_slot]
        assert out["type"] == kind and inp["type"] in (kind, "*"), (link_id, out, inp)
        assert inp["link"] == link_id and link_id in out["links"]
        if nodes[src]["type"] in NODES:
            assert NODES[nodes[src]["type"]].RETURN_TYPES[src_slot] == kind


def test_no_secrets_or_absolute_paths_in_workflows():
    for path in WORKFLOWS:
        text = path.read_text()
        assert "Bearer" not in text and not re.search(r'"(api_?key|token|secret)"\s*:', text, re.I)
        assert ":\\\\" not in text and "/home/" not in text and "/root/" not in text, path.name
