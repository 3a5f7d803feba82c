"""What ComfyUI's frontend shows about the nodes beyond their widgets: the help page of every node class
(``<WEB_DIRECTORY>/docs/<NodeClass>.md``, fetched from ``/extensions/<pack folder>/docs/``) and the words the
node search matches (``SEARCH_ALIASES``, sent as ``search_aliases`` in /object_info by ComfyUI releases that
know it; older ones ignore the attribute)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT

import hyv_pack
from hyv_pack import NODE_CLASS_MAPPINGS as NODES

SECTIONS = ("## Inputs", "## Outputs", "## The setting that usually matters", "## Troubleshooting")


def web_dir():
    return (ROOT / hyv_pack.WEB_DIRECTORY).resolve()


def inputs_of(cls) -> list[str]:
    declared = cls.INPUT_TYPES()
    return [name for section in ("required", "optional") for name in declared.get(section, {})]


def test_web_directory_is_a_folder_of_help_pages_and_loads_no_script():
    # ComfyUI loads every .js under WEB_DIRECTORY into the page; this folder is only for help pages.
    assert web_dir().is_dir() and web_dir() != ROOT.resolve()
    assert not list(web_dir().rglob("*.js"))


@pytest.mark.parametrize("node_class", sorted(NODES))
def test_every_node_has_a_help_page_naming_each_input(node_class):
    page = web_dir() / "docs" / f"{node_class}.md"
    assert page.is_file(), f"{node_class} has no help page: write web/docs/{node_class}.md"
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# "), "the page starts with the node's name as its title"
    for section in SECTIONS:
        assert section in text, f"{page.name}: no '{section}' section"
    documented = set(re.findall(r"`([a-z0-9_]+)`", text))
    missing = [name for name in inputs_of(NODES[node_class]) if name not in documented]
    assert not missing, f"{page.name} does not describe the inputs {missing}"
    outputs = getattr(NODES[node_class], "RETURN_NAMES", ())
    assert not [name for name in outputs if name not in documented], f"{page.name} misses outputs"


def test_help_pages_are_only_for_existing_nodes():
    pages = {p.stem for p in (web_dir() / "docs").glob("*.md")}
    assert pages <= set(NODES), f"help pages without a node: {sorted(pages - set(NODES))}"


@pytest.mark.parametrize("node_class", sorted(NODES))
def test_search_aliases_hold_the_words_users_type(node_class):
    aliases = getattr(NODES[node_class], "SEARCH_ALIASES", None)
    assert isinstance(aliases, list) and aliases, f"{node_class} has no SEARCH_ALIASES list"
    json.dumps(aliases)  # sent as JSON in /object_info
    assert all(isinstance(a, str) and a == a.strip().lower() and a for a in aliases)
    assert len(set(aliases)) == len(aliases), f"{node_class}: repeated aliases"
    assert {"hunyuan", "i2v", "image to video"} <= set(aliases)
    if "WaveSpeed" in node_class:
        assert "wavespeed" in aliases
