"""The table of model files (hunyuan_i2v/model_files.py) and everything made from it: the workflows'
``properties.models`` (ComfyUI's missing-model panel and its Download button), the README's file tables and
the loaders' tooltips."""

from __future__ import annotations

import json
from urllib.parse import urlparse

import pytest
from conftest import ROOT

from hyv_pack import NODE_CLASS_MAPPINGS as NODES
from hyv_pack.hunyuan_i2v import model_files
from hyv_pack.nodes import comfy_bridge

WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
COMFY_FOLDERS = {"diffusion_models", "vae", "text_encoders", "clip_vision", "loras", "latent_upscale_models"}


def listed_folders(node_type: str, monkeypatch) -> dict[str, str]:
    """Which models folder each file widget of a node lists, asked of the node itself: every folder's listing
    is replaced by one marker entry naming the folder."""
    monkeypatch.setattr(comfy_bridge, "list_model_files", lambda kind: [f"<{kind}>"])
    monkeypatch.setattr(comfy_bridge, "list_diffusers_folders", lambda: [])
    folders = {}
    spec = NODES[node_type].INPUT_TYPES()
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            if isinstance(entry[0], list):
                marked = [v for v in entry[0] if isinstance(v, str) and v.startswith("<") and v.endswith(">")]
                if marked:
                    folders[name] = marked[0][1:-1]
    return folders


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_every_model_widget_has_its_download_entry(path, monkeypatch):
    ui = json.loads(path.read_text())
    api = json.loads((path.parent / "api" / path.name).read_text())
    for node in ui["nodes"]:
        if node["type"] not in NODES:
            continue
        folders = listed_folders(node["type"], monkeypatch)
        entries = {e["name"]: e for e in node.get("properties", {}).get("models", [])}
        values = api[str(node["id"])]["inputs"]
        expected = set()
        for widget, folder in folders.items():
            value = values[widget]
            if not value.endswith(".safetensors"):  # "(from the diffusers folder)"
                continue
            expected.add(value)
            assert value in entries, f"{path.name}: {node['type']}.{widget} = {value} has no properties.models entry"
            entry = entries[value]
            assert entry["directory"] == folder, (path.name, widget, entry)
            assert urlparse(entry["url"]).scheme == "https" and entry["url"].endswith("/" + value)
            assert entry == model_files.BY_NAME[value].workflow_entry()
        assert set(entries) == expected, f"{path.name}: {node['type']} lists files its widgets do not name"


def test_only_loaders_carry_download_entries_and_the_api_twins_have_none():
    for path in WORKFLOWS:
        ui = json.loads(path.read_text())
        for node in ui["nodes"]:
            if node.get("properties", {}).get("models"):
                assert node["type"].startswith("HunyuanI2VLoad"), (path.name, node["type"])
        assert "properties" not in (path.parent / "api" / path.name).read_text()


def test_the_local_workflows_name_only_files_of_the_table():
    named = set()
    for path in WORKFLOWS:
        for node in json.loads(path.read_text())["nodes"]:
            named |= {v for v in node.get("widgets_values", []) if isinstance(v, str) and v.endswith(".safetensors")}
    assert named and named <= set(model_files.BY_NAME), named - set(model_files.BY_NAME)


def test_readme_tables_are_the_tables_of_the_table():
    readme = (ROOT / "README.md").read_text()
    assert readme == model_files.replace_readme_tables(readme), "run: python tools/make_model_tables.py"
    for file in model_files.FILES:
        assert f"[`{file.name}`]({file.url}) | `{file.folder}/`" in readme
    for family, label in (("1.5", "1.5"), ("13b", "13 B")):
        releases = model_files.RELEASES[model_files.FAMILY_OPTIONS[family]]
        assert all(f"`{r}`" in readme.split("Releases:")[1].split("\n\n")[0] for r in releases), family


def test_every_entry_is_a_comfyui_file_on_the_hub():
    for file in model_files.FILES:
        url = urlparse(file.url)
        assert url.scheme == "https" and url.netloc == "huggingface.co", file
        assert url.path == f"/{file.repo}/resolve/main/{file.path}", file
        assert file.path.split("/")[-1] == file.name, file
        assert file.folder in COMFY_FOLDERS and file.part in model_files.PARTS, file
        assert file.size > 10_000_000 and file.family in (model_files.HUNYUAN_VIDEO_15, model_files.HUNYUAN_VIDEO_13B)
        if file.part in (model_files.TRANSFORMER, model_files.SR_TRANSFORMER, model_files.UPSAMPLER):
            assert file.release in model_files.RELEASES[file.family], file
        else:
            assert not file.release, file
    # The files ComfyUI's own templates use are in the table with the templates' repositories and folders.
    templates = {
        "hunyuanvideo1.5_720p_i2v_fp16.safetensors": "Comfy-Org/HunyuanVideo_1.5_repackaged",
        "hunyuanvideo1.5_1080p_sr_distilled_fp16.safetensors": "Comfy-Org/HunyuanVideo_1.5_repackaged",
        "hunyuanvideo15_latent_upsampler_1080p.safetensors": "Comfy-Org/HunyuanVideo_1.5_repackaged",
        "qwen_2.5_vl_7b_fp8_scaled.safetensors": "Comfy-Org/HunyuanVideo_1.5_repackaged",
        "sigclip_vision_patch14_384.safetensors": "Comfy-Org/sigclip_vision_384",
        "llava_llama3_fp8_scaled.safetensors": "Comfy-Org/HunyuanVideo_repackaged",
        "clip_l.safetensors": "comfyanonymous/flux_text_encoders",
        "hunyuan_video_vae_bf16.safetensors": "Comfy-Org/HunyuanVideo_repackaged",
    }
    for name, repo in templates.items():
        assert model_files.BY_NAME[name].repo == repo and model_files.BY_NAME[name].in_templates


def names(files) -> list[str]:
    return [f.name for f in files]


def test_the_files_of_a_release():
    assert names(model_files.files_for("1.5", "480p_step_distilled", text_encoder_fp8=True)) == [
        "hunyuanvideo1.5_480p_i2v_step_distilled_fp8_scaled.safetensors", "hunyuanvideo15_vae_fp16.safetensors",
        "qwen_2.5_vl_7b_fp8_scaled.safetensors", "byt5_small_glyphxl_fp16.safetensors",
        "sigclip_vision_patch14_384.safetensors"]
    assert names(model_files.files_for("1.5", "720p", fp8=False))[:2] == [
        "hunyuanvideo1.5_720p_i2v_fp16.safetensors", "hunyuanvideo15_vae_fp16.safetensors"]
    assert "qwen_2.5_vl_7b.safetensors" in names(model_files.files_for("1.5", "720p"))
    assert names(model_files.files_for("13b", "v1", text_encoder_fp8=True)) == [
        "hunyuan_video_image_to_video_720p_bf16.safetensors", "hunyuan_video_vae_bf16.safetensors",
        "llava_llama3_fp8_scaled.safetensors", "clip_l.safetensors", "llava_llama3_vision.safetensors"]
    upscaled = names(model_files.files_for("1.5", "480p_step_distilled", upscale="720p"))
    assert "hunyuanvideo1.5_720p_sr_distilled_fp8_scaled.safetensors" in upscaled
    assert "hunyuanvideo15_latent_upsampler_720p.safetensors" in upscaled
    assert len(upscaled) == len(set(upscaled))
    assert names(model_files.files_for("1.5", "1080p_sr", fp8=False))[:2] == [
        "hunyuanvideo1.5_1080p_sr_distilled_fp16.safetensors", "hunyuanvideo15_latent_upsampler_1080p.safetensors"]
    with pytest.raises(ValueError, match="v2, v1"):
        model_files.files_for("13b", "720p")
    with pytest.raises(ValueError, match="HunyuanVideo-1.5 only"):
        model_files.files_for("13b", "v2", upscale="720p")


def test_the_loader_tooltips_name_the_tables_files(monkeypatch):
    monkeypatch.setattr(comfy_bridge, "list_model_files", lambda kind: [])
    tips = {name: entry[1].get("tooltip", "") for cls in ("HunyuanI2VLoadVAE", "HunyuanI2VLoadTextEncoders")
            for name, entry in NODES[cls].INPUT_TYPES()["required"].items() if len(entry) > 1}
    by_widget = {"vae_name": model_files.VAE, "text_encoder": model_files.TEXT_ENCODER,
                 "vision": model_files.VISION, "text_encoder_2": model_files.TEXT_ENCODER_2}
    for widget, part in by_widget.items():
        for family in (model_files.HUNYUAN_VIDEO_15, model_files.HUNYUAN_VIDEO_13B):
            for name in model_files.names_for(family, part):
                assert name in tips[widget], (widget, name)
    transformer_tip = NODES["HunyuanI2VLoadTransformer"].INPUT_TYPES()["required"]["model_name"][1]["tooltip"]
    for name in model_files.names_for(model_files.HUNYUAN_VIDEO_13B, model_files.TRANSFORMER):
        assert name in transformer_tip


def test_the_tables_family_names_are_the_engines():
    from hyv_pack.hunyuan_i2v import families

    assert (model_files.HUNYUAN_VIDEO_15, model_files.HUNYUAN_VIDEO_13B) == (
        families.HUNYUAN_VIDEO_15, families.HUNYUAN_VIDEO_13B)
