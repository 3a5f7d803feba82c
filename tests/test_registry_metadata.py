"""pyproject.toml as the Comfy Registry reads it (https://docs.comfy.org/registry/specifications, and ComfyUI's
own reader, comfy_config/config_parser.py): required fields present and well formed, the licence named there is
the one in LICENSE, and no placeholder URL."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import tomllib
from urllib.parse import urlsplit

import pytest
from conftest import ROOT
from packaging.specifiers import SpecifierSet

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
COMFY = PYPROJECT["tool"]["comfy"]

# What ComfyUI's comfy_config keeps; one classifier outside these makes it drop the whole list.
OS_PREFIXES = ("Microsoft", "POSIX", "MacOS", "OS Independent")
ACCELERATORS = {"GPU :: NVIDIA CUDA", "GPU :: AMD ROCm", "GPU :: Intel Arc", "NPU :: Huawei Ascend",
                "GPU :: Apple Metal"}
PLACEHOLDER_HOSTS = ("example.invalid", "example.com", "example.org", "example.net", "localhost")


def all_urls(value):
    """Every string in the parsed TOML that looks like a URL."""
    if isinstance(value, dict):
        for item in value.values():
            yield from all_urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_urls(item)
    elif isinstance(value, str) and re.match(r"^[a-z][a-z0-9+.-]*://", value, re.I):
        yield value


def test_node_id_and_version_follow_the_registry_rules():
    name = PROJECT["name"]
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*", name), name
    assert "comfyui" not in name.lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT["version"]), "the registry wants X.Y.Z"
    assert PROJECT.get("description")


def test_tool_comfy_has_a_publisher_a_display_name_and_the_comfyui_it_needs():
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", COMFY["PublisherId"]), COMFY.get("PublisherId")
    assert COMFY["DisplayName"]
    SpecifierSet(COMFY["requires-comfyui"])  # a version specifier, e.g. ">=0.3.64"
    assert "0.3.64" in SpecifierSet(COMFY["requires-comfyui"]), "the ComfyUI the opt-in tests run must qualify"
    icon = COMFY.get("Icon", "")
    assert icon == "" or (icon.startswith("https://") and icon.lower().endswith((".svg", ".png", ".jpg", ".gif")))


def test_classifiers_survive_comfyuis_reader():
    classifiers = PROJECT["classifiers"]
    systems = [c.removeprefix("Operating System :: ") for c in classifiers if c.startswith("Operating System :: ")]
    accelerators = [c.removeprefix("Environment :: ") for c in classifiers if c.startswith("Environment ::")]
    assert systems and all(s.startswith(OS_PREFIXES) for s in systems), systems
    assert accelerators and set(accelerators) <= ACCELERATORS, accelerators
    try:
        from trove_classifiers import classifiers as known
    except ImportError:
        return
    assert not [c for c in classifiers if c not in known], "not a PyPI classifier"


def test_licence_file_is_the_full_text_of_the_declared_licence():
    assert PROJECT["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    for part in ("Apache License", "Version 2.0, January 2004", "TERMS AND CONDITIONS FOR USE, REPRODUCTION",
                 "9. Accepting Warranty or Additional Liability.", "END OF TERMS AND CONDITIONS"):
        assert part in text, f"LICENSE lacks {part!r}: not the whole Apache-2.0 text"


def test_no_placeholder_or_plain_http_url():
    urls = list(all_urls(PYPROJECT))
    for url in urls:
        host = urlsplit(url).hostname or ""
        assert url.startswith("https://"), url
        assert not host.endswith(PLACEHOLDER_HOSTS), f"{url}: a placeholder URL is worse than none"
    known = {k.lower() for k in PROJECT.get("urls", {})}
    assert known <= {"repository", "documentation", "issues", "homepage", "bug tracker"}, known


@pytest.mark.comfyui
@pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="set COMFYUI_PATH to read it with ComfyUI's parser")
def test_comfyuis_own_reader_keeps_every_field():
    python = os.environ.get("COMFYUI_PYTHON", "python")
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from comfy_config import config_parser as p; "
              "c = p.extract_node_configuration(sys.argv[2]); "
              "print(repr((c.project.name, c.project.supported_os, c.project.supported_accelerators, "
              "c.project.supported_comfyui_version, c.project.license.text, c.tool_comfy.publisher_id)))")
    out = subprocess.run([python, "-c", script, os.environ["COMFYUI_PATH"], str(ROOT)], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    name, systems, accelerators, comfyui, licence, publisher = ast.literal_eval(out)
    assert (name, licence, publisher) == (PROJECT["name"], "Apache-2.0", COMFY["PublisherId"])
    assert systems and accelerators and comfyui == COMFY["requires-comfyui"]
