"""``hunyuan-i2v download`` against a loopback stand-in of the Hub (tests/hub_server.py); never the real network."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from hub_server import HubStandIn
from hyv_pack.hunyuan_i2v import model_files
from hyv_pack.hunyuan_i2v.cli import download, main

CHUNK = 4096
RELEASE_ARGS = ["download", "--family", "1.5", "--release", "480p_step_distilled", "--text-encoder-fp8"]


@pytest.fixture(autouse=True)
def no_real_network(monkeypatch):
    """Connections go to the loopback stand-in only: anything else fails the test."""
    real_connect = socket.socket.connect

    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"a test tried to reach {address}")
        return real_connect(self, address)

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"a test tried to look up {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    import huggingface_hub

    with HubStandIn() as stand_in:
        monkeypatch.setenv("HF_ENDPOINT", stand_in.url)
        # Offline mode is read once at import; a run that set it would refuse every request.
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
        for name in ("HF_TOKEN_PATH", "HF_STORED_TOKENS_PATH"):
            if hasattr(huggingface_hub.constants, name):
                monkeypatch.setattr(huggingface_hub.constants, name, str(tmp_path / "hf_home" / name.lower()))
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        # huggingface_hub keeps what arrived in whole chunks of this size (10 MB): small test files need small
        # chunks for a cut connection to leave something to resume, as a real file's first chunks do.
        monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", CHUNK)
        yield stand_in


def content_for(file: model_files.ModelFile) -> bytes:
    """Small distinct bytes per file (the stand-in's sizes are what the command checks, not the table's)."""
    seed = file.name.encode()
    return (seed * (40_000 // len(seed) + 1))[: 30_000 + len(seed) * 100]


def serve_release(hub: HubStandIn, files) -> dict[str, str]:
    return {file.name: hub.add(file.repo, file.path, content_for(file)) for file in files}


def release_files():
    return model_files.files_for("1.5", "480p_step_distilled", text_encoder_fp8=True)


def run(args, models: Path, capsys) -> tuple[int, str, str]:
    code = main([*args, "--models", str(models), "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


def test_fetches_the_release_into_comfyui_folders(hub, tmp_path, capsys):
    files = release_files()
    keys = serve_release(hub, files)
    models = tmp_path / "models"
    code, out, err = run(RELEASE_ARGS, models, capsys)
    assert code == 0, err
    for file in files:
        target = models / file.folder / file.name
        assert target.is_file() and not target.is_symlink()
        assert target.read_bytes() == content_for(file)
        assert hub.gets(keys[file.name]) == [None]
    # ComfyUI's layout only: no Hugging Face cache folders or partial files left in the models folder.
    left = sorted(p.relative_to(models).as_posix() for p in models.rglob("*") if p.is_file())
    assert left == sorted(file.relative_path for file in files)
    assert "hunyuanvideo1.5_480p_i2v_step_distilled_fp8_scaled.safetensors" in out


def test_resumes_after_a_cut_connection(hub, tmp_path, capsys):
    files = release_files()
    keys = serve_release(hub, files)
    transformer = files[0]
    hub.cut_after[keys[transformer.name]] = 3 * CHUNK
    models = tmp_path / "models"
    code, _, err = run(RELEASE_ARGS, models, capsys)
    assert code == 0, err
    assert (models / transformer.relative_path).read_bytes() == content_for(transformer)
    assert hub.gets(keys[transformer.name]) == [None, f"bytes={3 * CHUNK}-"]


def test_resumes_the_part_file_an_earlier_run_left(hub, tmp_path, capsys):
    files = release_files()
    keys = serve_release(hub, files)
    transformer = files[0]
    models = tmp_path / "models"
    partial = models / transformer.folder / (transformer.name + ".part")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(content_for(transformer)[:20_000])
    code, out, err = run(RELEASE_ARGS, models, capsys)
    assert code == 0, err
    assert hub.gets(keys[transformer.name]) == ["bytes=20000-"]
    assert (models / transformer.relative_path).read_bytes() == content_for(transformer)
    assert not partial.exists()


def test_a_cut_connection_that_does_not_recover_keeps_the_part_file(hub, tmp_path, capsys):
    """huggingface_hub retries a cut connection while bytes keep arriving; when the server then fails, what arrived
    stays in the .part file, the message says so in a sentence, and the next run resumes it."""
    files = release_files()
    keys = serve_release(hub, files)
    transformer = files[0]
    key = keys[transformer.name]
    hub.cut_after[key] = 2 * CHUNK
    hub.refuse_ranges[key] = 503
    models = tmp_path / "models"
    code, _, err = run(RELEASE_ARGS, models, capsys)
    assert code == 2
    assert "503" in err and "next run resumes" in err and err.count("\n") == 1
    partial = models / transformer.folder / (transformer.name + ".part")
    assert partial.stat().st_size == 2 * CHUNK
    del hub.refuse_ranges[key]
    code, _, err = run(RELEASE_ARGS, models, capsys)
    assert code == 0, err
    assert hub.gets(key)[-1] == f"bytes={2 * CHUNK}-"
    assert (models / transformer.relative_path).read_bytes() == content_for(transformer)


def test_skips_a_file_that_is_already_whole(hub, tmp_path, capsys):
    files = release_files()
    keys = serve_release(hub, files)
    vae = next(f for f in files if f.part == model_files.VAE)
    models = tmp_path / "models"
    (models / vae.folder).mkdir(parents=True)
    (models / vae.relative_path).write_bytes(content_for(vae))
    code, out, err = run(RELEASE_ARGS, models, capsys)
    assert code == 0, err
    assert hub.gets(keys[vae.name]) == []
    assert "present, skipped" in next(line for line in out.splitlines() if vae.name in line)


def test_refuses_a_partial_file_in_the_models_folder(hub, tmp_path, capsys):
    files = release_files()
    serve_release(hub, files)
    vae = next(f for f in files if f.part == model_files.VAE)
    models = tmp_path / "models"
    (models / vae.folder).mkdir(parents=True)
    (models / vae.relative_path).write_bytes(content_for(vae)[:1000])
    code, _, err = run(RELEASE_ARGS, models, capsys)
    assert code == 2
    assert vae.name in err and "delete it" in err and err.count("\n") == 1
    assert not any(method == "GET" for method, _, _ in hub.requests)


def test_refuses_a_run_that_cannot_fit_on_disk(hub, tmp_path, capsys, monkeypatch):
    files = release_files()
    serve_release(hub, files)
    total = sum(len(content_for(f)) for f in files)
    usage = type("Usage", (), {"total": 10 * total, "used": 0, "free": total})  # less than total + the margin
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: usage)
    models = tmp_path / "models"
    code, _, err = run(RELEASE_ARGS, models, capsys)
    assert code == 2
    assert "Not enough space" in err and err.count("\n") == 1
    assert not any(method == "GET" for method, _, _ in hub.requests)
    assert not models.exists() or not any(models.rglob("*.part"))


def test_dry_run_lists_files_sizes_and_places_and_fetches_nothing(hub, tmp_path, capsys):
    files = model_files.files_for("13b", "v2", text_encoder_fp8=False)
    serve_release(hub, files)
    models = tmp_path / "models"
    code, out, err = run(["download", "--family", "13b", "--release", "v2", "--dry-run"], models, capsys)
    assert code == 0, err
    for file in files:
        line = next(line for line in out.splitlines() if file.relative_path in line)
        assert model_files.shown_size(len(content_for(file))) in line and "would fetch" in line
    assert "llava_llama3_fp16.safetensors" in out and "about" not in out
    assert not any(method == "GET" for method, _, _ in hub.requests)
    assert not models.exists()


def test_upscale_adds_the_super_resolution_files(hub, tmp_path, capsys):
    files = model_files.files_for("1.5", "720p_cfg_distilled", upscale="1080p")
    serve_release(hub, files)
    code, out, err = run(["download", "--family", "1.5", "--release", "720p_cfg_distilled", "--upscale", "1080p",
                          "--dry-run"], tmp_path / "models", capsys)
    assert code == 0, err
    assert "latent_upscale_models/hunyuanvideo15_latent_upsampler_1080p.safetensors" in out
    assert "diffusion_models/hunyuanvideo1.5_1080p_sr_distilled_fp8_scaled.safetensors" in out


@pytest.mark.parametrize("status,code,words", [
    (404, "EntryNotFound", "(404)"),
    (401, "GatedRepo", "is gated"),
    (401, "RepoNotFound", "(401"),
    (403, "", "(403)"),
])
def test_hub_errors_are_one_sentence(hub, tmp_path, capsys, status, code, words):
    files = release_files()
    keys = serve_release(hub, files)
    hub.errors[keys[files[0].name]] = (status, code)
    exit_code, _, err = run(RELEASE_ARGS, tmp_path / "models", capsys)
    assert exit_code == 2
    assert words in err and files[0].repo in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_no_network_is_one_sentence(hub, tmp_path, capsys, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", closed)
    code, _, err = run(RELEASE_ARGS, tmp_path / "models", capsys)
    assert code == 2
    assert "Could not reach" in err and err.count("\n") == 1
    # The dry run still lists the files, with the table's approximate sizes.
    import huggingface_hub

    asked = []
    real_metadata = huggingface_hub.get_hf_file_metadata
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata",
                        lambda *a, **k: asked.append(a) or real_metadata(*a, **k))
    code, out, _ = run([*RELEASE_ARGS, "--dry-run"], tmp_path / "models", capsys)
    assert code == 0 and "Could not reach" in out
    assert out.count("about;") == len(release_files())
    assert len(asked) == 1  # not once per file: each try can wait for a timeout


def test_offline_mode_is_one_sentence(hub, tmp_path, capsys, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    code, _, err = run(RELEASE_ARGS, tmp_path / "models", capsys)
    assert code == 2 and "HF_HUB_OFFLINE" in err


def test_refuses_a_release_of_the_other_family(tmp_path, capsys):
    code, _, err = run(["download", "--family", "13b", "--release", "480p_step_distilled"], tmp_path, capsys)
    assert code == 2 and "v2, v1" in err


def test_needs_a_models_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HUNYUAN_I2V_MODELS", raising=False)
    code = main(["download", "--family", "13b", "--release", "v2"])
    assert code == 2 and "--models" in capsys.readouterr().err


def test_the_nodes_never_import_the_downloader():
    root = Path(__file__).resolve().parents[1] / "nodes"
    for source in root.glob("*.py"):
        imports = re.findall(r"^\s*(?:from|import)\s+(.*)$", source.read_text(), re.M)
        assert not [line for line in imports if re.search(r"\b(cli|download|huggingface_hub)\b", line)], source


def test_environment_is_not_left_pointing_at_the_stand_in():
    assert "127.0.0.1" not in os.environ.get("HF_ENDPOINT", "")


def test_a_progress_bar_per_file(hub, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TQDM_POSITION", "-1")  # huggingface_hub's switch to draw bars without a terminal
    files = release_files()
    serve_release(hub, files)
    code = main([*RELEASE_ARGS, "--models", str(tmp_path / "models")])
    err = capsys.readouterr().err
    assert code == 0, err
    for file in files:
        assert any(file.name[-30:] in line and "100%" in line for line in err.replace("\r", "\n").splitlines())


def test_follows_the_hubs_redirect_to_a_cdn_without_the_token(hub, tmp_path, capsys, monkeypatch):
    """Large files: the Hub answers 302 to a CDN with the size in X-Linked-Size; the token stays with the Hub."""
    monkeypatch.setenv("HF_TOKEN", "hf_stand_in_token")
    hub.cdn = True
    files = release_files()
    keys = serve_release(hub, files)
    models = tmp_path / "models"
    code, _, err = run(RELEASE_ARGS, models, capsys)
    assert code == 0, err
    for file in files:
        assert (models / file.relative_path).read_bytes() == content_for(file)
        assert hub.authorization[keys[file.name]][0] == "Bearer hf_stand_in_token"  # the metadata request
        assert hub.authorization["/cdn" + keys[file.name]] == [None]  # the bytes
