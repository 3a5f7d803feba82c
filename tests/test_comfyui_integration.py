"""Opt-in: the pack inside a real ComfyUI server, driven over its HTTP API.

Skipped unless ``COMFYUI_PATH`` names a ComfyUI checkout (the folder with
``main.py``). ``COMFYUI_PYTHON`` picks the interpreter that runs ComfyUI (a
virtual environment with ComfyUI's and the pack's requirements); without it
the interpreter running pytest is used. See docs/comfyui_integration.md.

What it does, all on 127.0.0.1 with bounded waits:

* makes a throw-away ComfyUI base directory: ``custom_nodes/hunyuan-video i2v``
  (a symlink to this repository; the space and dash check that nothing in the
  pack depends on its folder name), empty input/output/user/temp folders, and
  an ``extra_model_paths.yaml`` pointing at the tiny models of the
  ``models_root`` (13 B) and ``models15_root`` (HunyuanVideo-1.5) fixtures;
  ComfyUI runs with ``--base-directory`` there, an in-memory database and
  ``PYTHONDONTWRITEBYTECODE=1``, so nothing is written into the ComfyUI
  checkout or this repository;
* starts ``main.py --cpu`` on a free loopback port (and the WaveSpeed stand-in
  server, when the pack has it, with WAVESPEED_BASE_URL / WAVESPEED_API_KEY
  set for ComfyUI only), and stops both in the fixture's teardown;
* checks /object_info against the pack's NODE_CLASS_MAPPINGS and the server log
  for import errors; validates every ``workflows/*.json`` against /object_info;
  converts the local workflow (UI format) to an API prompt, runs it on the tiny
  13 B v2 and v1 models and on the tiny HunyuanVideo-1.5 (its diffusers folder,
  and ComfyUI's single files) and decodes the saved MP4s; runs bad prompts
  (frames=10; a 1.5 VAE in the 13 B graph) and checks the pack's messages in
  /history; runs the WaveSpeed workflow against the stand-in server; keeps a
  transformer resident (offload mode none), POSTs /free and checks that the
  pack released it. Two more
  short-lived servers check a ComfyUI started with ``--preview-method auto`` and
  one whose models folder has only ComfyUI's single files (no
  ``models/diffusers``), where the tokenizers must come from ComfyUI itself.
  A fourth runs the multi-GPU workflow with gpus 1 and 2 (2 gloo worker
  processes, the server's children), compares the two videos, and checks
  that the workers end once ComfyUI's own process has been stopped.

Test infrastructure only: torchvision / torchaudio stand-ins. ComfyUI imports
torchvision and torchaudio at start-up, and the package registries have no CPU
build of either that matches a CPU-only torch (the torchvision wheel pip finds
is a CUDA build whose C extension fails to load). When ``COMFYUI_PYTHON``
cannot import one of them, the test writes a minimal stand-in package for it
into the temporary base directory and puts that on the ComfyUI process's
PYTHONPATH (nothing is installed anywhere): any ``torchvision.*`` /
``torchaudio.*`` import succeeds, and calling anything from it raises. The
nodes this pack's workflows use never call them; transformers would (SigLIP's
image processor, which HunyuanVideo-1.5 uses, resizes with torchvision when it
finds it), so a ``sitecustomize.py`` beside the stand-ins tells transformers
that torchvision is absent, and it uses its PIL processors instead.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
LOCAL_WORKFLOW = ROOT / "workflows" / "Hunyuan 13B 720p (v2, recommended).json"
WAVESPEED_WORKFLOW = ROOT / "workflows" / "WaveSpeed Hunyuan 13B (paid).json"
MULTI_GPU_WORKFLOW = ROOT / "workflows" / "Hunyuan 1.5 720p, several GPUs.json"
PACK_FOLDER = "hunyuan-video i2v"  # custom_nodes/<this>: a space and a dash on purpose
HOST = "127.0.0.1"

START_TIMEOUT_S = 240.0   # ComfyUI start-up (imports torch, transformers, every core node)
RUN_TIMEOUT_S = 600.0     # one tiny prompt on two CPU cores
HTTP_TIMEOUT_S = 30.0     # one request
STOP_TIMEOUT_S = 20.0
WORKER_EXIT_TIMEOUT_S = 30.0  # the loader's worker processes, once ComfyUI has gone

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(
        not os.environ.get("COMFYUI_PATH"),
        reason="opt-in: set COMFYUI_PATH to a ComfyUI checkout (and COMFYUI_PYTHON to its interpreter) to run "
               "the pack inside a real ComfyUI server",
    ),
]

# Widget types the frontend draws; a COMBO is also declared as a plain list of options.
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")
FILE_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".png", ".jpg", ".jpeg", ".webp",
                 ".mp4", ".webm", ".wav", ".flac", ".mp3")
# Frontend-only nodes: never sent to the server.
VIRTUAL_NODES = ("Note", "MarkdownNote", "Reroute", "PrimitiveNode")


# ====================================================================== server

class ComfyServer:
    def __init__(self, process: subprocess.Popen, url: str, base: Path, log_path: Path, stand_in=None):
        self.process = process
        self.url = url
        self.base = base
        self.log_path = log_path
        self.stand_in = stand_in
        self.stand_in_reason = ""  # why there is no WaveSpeed stand-in
        self.stand_ins: list[str] = []  # torchvision / torchaudio stand-ins on ComfyUI's PYTHONPATH
        self._object_info = None

    # ------------------------------------------------------------------ http
    def request(self, method: str, path: str, timeout: float = HTTP_TIMEOUT_S, **kwargs):
        import requests

        self.assert_alive()
        return requests.request(method, self.url + path, timeout=timeout, **kwargs)

    def get_json(self, path: str):
        response = self.request("GET", path)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:500]}"
        return response.json()

    @property
    def object_info(self) -> dict:
        if self._object_info is None:
            self._object_info = self.get_json("/object_info")
        return self._object_info

    # ------------------------------------------------------------------ state
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def assert_alive(self) -> None:
        code = self.process.poll()
        assert code is None, f"ComfyUI exited with code {code}. Log tail:\n{self.log_tail()}"

    # ------------------------------------------------------------------ prompts
    def upload_image(self, name: str, png: bytes) -> str:
        response = self.request("POST", "/upload/image", files={"image": (name, png, "image/png")},
                                data={"overwrite": "true"})
        assert response.status_code == 200, response.text
        answer = response.json()
        self._object_info = None  # LoadImage's options list the input folder
        return f"{answer['subfolder']}/{answer['name']}" if answer.get("subfolder") else answer["name"]

    def queue(self, prompt: dict) -> str:
        response = self.request("POST", "/prompt", json={"prompt": prompt, "client_id": "hyv-integration-test"})
        assert response.status_code == 200, (
            f"ComfyUI refused the prompt: {json.dumps(response.json() if response.content else {}, indent=1)[:4000]}"
        )
        return response.json()["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = RUN_TIMEOUT_S) -> dict:
        """The prompt's /history entry once it has finished (success or error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get_json(f"/history/{prompt_id}")
            entry = history.get(prompt_id)
            if entry:  # ComfyUI adds the entry when the prompt has finished, with or without error
                return entry
            time.sleep(0.5)
        pytest.fail(f"prompt {prompt_id} did not finish in {timeout:.0f} s. Log tail:\n{self.log_tail()}")

    def run(self, prompt: dict, timeout: float = RUN_TIMEOUT_S) -> dict:
        return self.wait(self.queue(prompt), timeout)

    def output_file(self, item: dict) -> Path:
        assert item.get("type") == "output", item
        return self.base / "output" / item.get("subfolder", "") / item["filename"]

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(STOP_TIMEOUT_S)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


STUB_SOURCE = '''"""Stand-in for {name}, written by tests/test_comfyui_integration.py (test infrastructure only).

Any {name}.* import succeeds; calling anything from it raises."""
import importlib.abc
import importlib.machinery
import sys
import types

__version__ = "0.0.0+stand-in"


class _Missing:
    def __init__(self, path):
        self._path = path

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Missing(self._path + "." + attr)

    def __call__(self, *args, **kwargs):
        raise RuntimeError(self._path + " is a stand-in: {name} is not installed")

    def __mro_entries__(self, bases):
        return (object,)


def _module_getattr(prefix):
    def getattr_(attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Missing(prefix + "." + attr)
    return getattr_


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.startswith("{name}."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = _module_getattr(spec.name)
        return module

    def exec_module(self, module):
        pass


sys.meta_path.append(_Finder())
__getattr__ = _module_getattr("{name}")
'''


# With the torchvision stand-in on the path, transformers takes it for the real package and sends images
# through it: SiglipImageProcessor (HunyuanVideo-1.5's vision encoder) resizes with torchvision. This
# sitecustomize, next to the stand-ins, tells transformers there is no torchvision, so it uses its PIL
# processors, as it does wherever torchvision is not installed (the pytest side, for one).
HIDE_TORCHVISION_SOURCE = '''"""Written by tests/test_comfyui_integration.py (test infrastructure only): torchvision
here is a stand-in that imports but cannot run, so transformers must not pick its torchvision backends."""
try:
    import transformers.utils as _utils
    import transformers.utils.import_utils as _import_utils
except Exception:  # no transformers: nothing to tell
    pass
else:
    def is_torchvision_available():
        return False

    _utils.is_torchvision_available = _import_utils.is_torchvision_available = is_torchvision_available
'''


def _stand_ins_needed(python: str, cwd: Path, env: dict) -> list[str]:
    """torchvision / torchaudio that ``python`` cannot import."""
    script = ("import importlib, sys\n"
              "for name in ('torchvision', 'torchaudio'):\n"
              "    try:\n        importlib.import_module(name)\n"
              "    except Exception:\n        print(name)\n")
    result = subprocess.run([python, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{python} cannot run: {result.stderr[-2000:]}"
    return result.stdout.split()


def _start_wavespeed_stand_in():
    """The pack's WaveSpeed stand-in server, or (None, reason) when the pack has none."""
    if not (ROOT / "nodes" / "wavespeed_node.py").exists():
        return None, "nodes/wavespeed_node.py does not exist"
    if not (ROOT / "tests" / "wavespeed_server.py").exists():
        return None, "tests/wavespeed_server.py does not exist"
    try:
        import wavespeed_server
    except Exception as exc:  # noqa: BLE001 - reported as the skip reason
        return None, f"tests/wavespeed_server.py does not import: {exc!r}"
    return wavespeed_server.StandInWaveSpeed().start(), ""


@contextlib.contextmanager
def comfy_server(models_roots, tmp_path_factory, extra_args: tuple = (), wavespeed: bool = True,
                 folders: tuple = ("diffusion_models", "vae", "diffusers", "text_encoders", "clip_vision",
                                   "latent_upscale_models")):
    """A running ComfyUI with the pack in a fresh base directory; stopped on exit.

    ``models_roots``: one models folder or several (each one section of extra_model_paths.yaml);
    ``folders``: the model folders of each that ComfyUI gets."""
    roots = [Path(models_roots)] if isinstance(models_roots, (str, Path)) else [Path(r) for r in models_roots]
    comfy_path = Path(os.environ["COMFYUI_PATH"]).expanduser().resolve()
    assert (comfy_path / "main.py").is_file(), f"COMFYUI_PATH={comfy_path} has no main.py"
    python = os.environ.get("COMFYUI_PYTHON") or sys.executable

    base = tmp_path_factory.mktemp("comfy base")
    for sub in ("custom_nodes", "models", "input", "output", "user", "temp"):
        (base / sub).mkdir()
    (base / "custom_nodes" / PACK_FOLDER).symlink_to(ROOT, target_is_directory=True)
    model_paths = base / "extra_model_paths.yaml"
    model_paths.write_text("".join(
        f"hyv_tiny_models_{index}:\n"
        f"    base_path: {json.dumps(str(root))}\n"
        + "".join(f"    {kind}: {kind}/\n" for kind in folders if (root / kind).is_dir())
        for index, root in enumerate(roots)
    ))

    env = {k: v for k, v in os.environ.items()
           if k not in ("HUNYUAN_I2V_MODELS", "WAVESPEED_API_KEY_FILE", "WAVESPEED_API_KEY", "WAVESPEED_BASE_URL",
                        "PYTHONPATH")}
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               DO_NOT_TRACK="1", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    stand_ins = _stand_ins_needed(python, base, env)
    if stand_ins:
        stubs = base / "stand_ins"
        for name in stand_ins:
            (stubs / name).mkdir(parents=True)
            (stubs / name / "__init__.py").write_text(STUB_SOURCE.replace("{name}", name))
        if "torchvision" in stand_ins:
            (stubs / "sitecustomize.py").write_text(HIDE_TORCHVISION_SOURCE)
        env["PYTHONPATH"] = str(stubs)

    stand_in, stand_in_reason = _start_wavespeed_stand_in() if wavespeed else (None, "not started for this server")
    if stand_in is not None:
        env["WAVESPEED_BASE_URL"] = stand_in.base_url
        env["WAVESPEED_API_KEY"] = stand_in.api_key

    cli_args = (comfy_path / "comfy" / "cli_args.py").read_text()
    server = None
    try:
        for attempt in range(3):  # the free port can be taken between choosing and binding it
            port = _free_port()
            command = [python, "main.py", "--cpu", "--listen", HOST, "--port", str(port),
                       "--base-directory", str(base), "--extra-model-paths-config", str(model_paths),
                       *extra_args]
            if "--disable-auto-launch" in cli_args:
                command.append("--disable-auto-launch")
            if "--database-url" in cli_args:  # the default database lives inside the checkout
                command += ["--database-url", "sqlite:///:memory:"]
            log_path = base / f"comfyui-{attempt}.log"
            with open(log_path, "wb") as log:
                process = subprocess.Popen(command, cwd=comfy_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
            server = ComfyServer(process, f"http://{HOST}:{port}", base, log_path, stand_in)
            server.stand_in_reason = stand_in_reason
            server.stand_ins = stand_ins
            if _wait_until_up(server):
                break
            log_text = server.log()
            server.stop()
            if "address already in use" not in log_text.lower() or attempt == 2:
                pytest.fail(f"ComfyUI did not start (command: {command}). Log tail:\n"
                            + "\n".join(log_text.splitlines()[-80:]))
        yield server
    finally:
        if server is not None:
            server.stop()
        if stand_in is not None:
            stand_in.stop()


FULL_VOCAB_QWEN = "tiny_qwen25_full_vocab.safetensors"
QWEN25_VL_VOCAB = 152064  # rows of Qwen2.5-VL-7B's embedding table (its tokenizer has 151,665 tokens)


@pytest.fixture(scope="module")
def full_vocab_root(models15_root, tmp_path_factory) -> Path:
    """A models folder with text_encoders/tiny_qwen25_full_vocab.safetensors: the tiny Qwen2.5-VL single file
    with its embedding table grown to the real model's 152,064 rows, so it takes ComfyUI's real Qwen2.5
    tokenizer (comfy/text_encoders/qwen25_tokenizer) as well as the tiny diffusers folder's."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    source = models15_root / "text_encoders" / "tiny_qwen25.safetensors"
    with safe_open(str(source), "pt") as handle:
        metadata = handle.metadata()
    state = load_file(str(source))
    generator = torch.Generator().manual_seed(0)
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        table = state[key]
        extra = torch.randn(QWEN25_VL_VOCAB - table.shape[0], table.shape[1], generator=generator) * table.std()
        state[key] = torch.cat([table, extra.to(table.dtype)]).contiguous()
    root = tmp_path_factory.mktemp("models15 full vocab")
    (root / "text_encoders").mkdir()
    save_file(state, str(root / "text_encoders" / FULL_VOCAB_QWEN), metadata=metadata)
    return root


@pytest.fixture(scope="module")
def comfy(models_root, models15_root, full_vocab_root, tmp_path_factory):
    with comfy_server((models_root, models15_root, full_vocab_root), tmp_path_factory) as server:
        yield server


def _wait_until_up(server: ComfyServer) -> bool:
    import requests

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            if requests.get(server.url + "/system_stats", timeout=5).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.5)
    return False


# ====================================================================== workflow helpers

def _spec(entry) -> tuple:
    """(type, options) of an /object_info input entry; a COMBO's type is "COMBO"."""
    kind = entry[0]
    options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
    if isinstance(kind, list):
        options = {**options, "options": kind}
        kind = "COMBO"
    return kind, options


def _declared_inputs(info: dict) -> dict:
    """name -> /object_info entry for required and optional inputs, in INPUT_TYPES order."""
    declared = {}
    order = info.get("input_order", {})
    for section in ("required", "optional"):
        entries = info.get("input", {}).get(section, {})
        for name in order.get(section, list(entries)):
            declared[name] = entries[name]
    return declared


def _widget_inputs(info: dict) -> list[tuple[str, str, dict]]:
    """(name, type, options) of the inputs the frontend draws as widgets, in order."""
    widgets = []
    for name, entry in _declared_inputs(info).items():
        kind, options = _spec(entry)
        if kind in WIDGET_TYPES and not options.get("forceInput"):
            widgets.append((name, kind, options))
    return widgets


def _extra_values(name: str, kind: str, options: dict) -> list[str]:
    """Values the frontend stores after a widget's own: the seed control, the upload button."""
    extra = []
    if options.get("control_after_generate", kind == "INT" and name in ("seed", "noise_seed")):
        extra.append("control_after_generate")
    if any(options.get(flag) for flag in UPLOAD_FLAGS):
        extra.append("upload")
    return extra


def widget_values(node: dict, info: dict) -> tuple[dict, list[str]]:
    """widgets_values mapped to input names (INPUT_TYPES order), and what did not fit."""
    where = f"node {node['id']} ({node['type']})"
    values = node.get("widgets_values", [])
    widgets = _widget_inputs(info)
    if isinstance(values, dict):  # some frontends store a dict by name
        unknown = sorted(set(values) - {name for name, _, _ in widgets})
        return ({name: values[name] for name, _, _ in widgets if name in values},
                [f"{where}: widgets_values names no input: {unknown}"] if unknown else [])
    mapped, problems, index = {}, [], 0
    for name, kind, options in widgets:
        if index >= len(values):
            problems.append(f"{where}: no widget value for '{name}' ({len(values)} values for "
                            f"{len(widgets)} widgets)")
            return mapped, problems
        mapped[name] = values[index]
        index += 1
        for extra in _extra_values(name, kind, options):
            if index >= len(values):
                problems.append(f"{where}: '{name}' lacks its {extra} value")
                return mapped, problems
            if extra == "control_after_generate" and values[index] not in CONTROL_VALUES:
                problems.append(f"{where}: '{name}' control value {values[index]!r} is not one of {CONTROL_VALUES}")
            index += 1
    if index != len(values):
        problems.append(f"{where}: {len(values)} widget values, the inputs take {index}: {values[index:]!r} left over")
    return mapped, problems


def _types_match(a: str, b: str) -> bool:
    a, b = str(a), str(b)
    if a == b or "*" in (a, b):
        return True
    return bool(set(a.split(",")) & set(b.split(",")))


def _ui_type(entry) -> str:
    kind = entry[0]
    return "COMBO" if isinstance(kind, list) else kind


def check_value(where: str, value, kind: str, options: dict, file_list: bool) -> list[str]:
    if kind == "COMBO":
        if file_list:  # lists the user's files: any name is fine in a shipped workflow
            return [] if isinstance(value, str) and value else [f"{where}: file choice {value!r} is not a name"]
        choices = options.get("options", [])
        return [] if value in choices else [f"{where}: {value!r} is not one of {choices}"]
    if kind == "BOOLEAN":
        return [] if isinstance(value, bool) else [f"{where}: {value!r} is not a boolean"]
    if kind == "STRING":
        return [] if isinstance(value, str) else [f"{where}: {value!r} is not a string"]
    if kind == "INT" and (isinstance(value, bool) or not isinstance(value, int)):
        return [f"{where}: {value!r} is not an integer"]
    if kind == "FLOAT" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return [f"{where}: {value!r} is not a number"]
    problems = []
    if "min" in options and value < options["min"]:
        problems.append(f"{where}: {value} is below min {options['min']}")
    if "max" in options and value > options["max"]:
        problems.append(f"{where}: {value} is above max {options['max']}")
    return problems


def _is_file_list(node_type: str, name: str, options: dict, value, pack_file_lists: set) -> bool:
    if (node_type, name) in pack_file_lists or any(options.get(flag) for flag in UPLOAD_FLAGS):
        return True
    choices = [c for c in options.get("options", []) if isinstance(c, str)]
    names = choices + ([value] if isinstance(value, str) else [])
    return bool(names) and all(n.lower().endswith(FILE_SUFFIXES) for n in names)


def validate_workflow(workflow: dict, object_info: dict, pack_file_lists: set) -> list[str]:
    """Everything in a UI-format workflow that ComfyUI's /object_info contradicts."""
    problems = []
    nodes = {node["id"]: node for node in workflow["nodes"]}

    def output_type(node: dict, slot: int):
        if node["type"] in VIRTUAL_NODES:
            return "*"
        outputs = object_info.get(node["type"], {}).get("output", [])
        return outputs[slot] if slot < len(outputs) else None

    for node in workflow["nodes"]:
        kind, where = node["type"], f"node {node['id']} ({node['type']})"
        if kind in VIRTUAL_NODES:
            continue
        if kind not in object_info:
            problems.append(f"{where}: ComfyUI has no node type '{kind}'")
            continue
        info = object_info[kind]
        mapped, found = widget_values(node, info)
        problems += found
        widgets = {name: (k, o) for name, k, o in _widget_inputs(info)}
        for name, value in mapped.items():
            k, options = widgets[name]
            problems += check_value(f"{where} {name}", value, k, options,
                                    _is_file_list(kind, name, options, value, pack_file_lists))
        declared = _declared_inputs(info)
        linked = set()
        for slot in node.get("inputs", []):
            name = slot.get("widget", {}).get("name", slot["name"])
            if name not in declared:
                problems.append(f"{where}: input '{name}' is not declared (declared: {list(declared)})")
                continue
            if not _types_match(slot["type"], _ui_type(declared[name])):
                problems.append(f"{where}: input '{name}' has type {slot['type']}, ComfyUI declares "
                                f"{_ui_type(declared[name])}")
            if slot.get("link") is not None:
                linked.add(name)
        for name, entry in info.get("input", {}).get("required", {}).items():
            kind_, options = _spec(entry)
            is_widget = kind_ in WIDGET_TYPES and not options.get("forceInput")
            if not is_widget and name not in linked:
                problems.append(f"{where}: required input '{name}' ({kind_}) is not connected")
        declared_outputs = info.get("output", [])
        for index, slot in enumerate(node.get("outputs", [])):
            if index >= len(declared_outputs):
                problems.append(f"{where}: output {index} ({slot.get('name')}) does not exist")
            elif not _types_match(slot["type"], declared_outputs[index]):
                problems.append(f"{where}: output {index} has type {slot['type']}, ComfyUI declares "
                                f"{declared_outputs[index]}")

    for link in workflow.get("links", []):
        link_id, origin_id, origin_slot, target_id, target_slot, link_type = link[:6]
        where = f"link {link_id}"
        origin, target = nodes.get(origin_id), nodes.get(target_id)
        if origin is None or target is None:
            problems.append(f"{where}: joins missing node {origin_id if origin is None else target_id}")
            continue
        source_type = output_type(origin, origin_slot)
        if source_type is None:
            problems.append(f"{where}: node {origin_id} has no output {origin_slot}")
        elif not _types_match(source_type, link_type):
            problems.append(f"{where}: carries {link_type} but node {origin_id} output {origin_slot} is {source_type}")
        inputs = target.get("inputs", [])
        if target_slot >= len(inputs):
            problems.append(f"{where}: node {target_id} has no input slot {target_slot}")
            continue
        slot = inputs[target_slot]
        if slot.get("link") != link_id:
            problems.append(f"{where}: node {target_id} input {slot['name']} names link {slot.get('link')}")
        if target["type"] not in VIRTUAL_NODES and target["type"] in object_info:
            name = slot.get("widget", {}).get("name", slot["name"])
            declared = _declared_inputs(object_info[target["type"]]).get(name)
            if declared is not None and not _types_match(link_type, _ui_type(declared)):
                problems.append(f"{where}: carries {link_type} into {target['type']}.{name}, which takes "
                                f"{_ui_type(declared)}")
        outputs = origin.get("outputs", [])
        if origin_slot < len(outputs) and link_id not in (outputs[origin_slot].get("links") or []):
            problems.append(f"{where}: node {origin_id} output {origin_slot} does not list it")
    return problems


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """A UI-format workflow as the API prompt the frontend would queue."""
    nodes = {node["id"]: node for node in workflow["nodes"]}
    links = {link[0]: link for link in workflow.get("links", [])}

    def source(link_id):
        link = links[link_id]
        origin = nodes[link[1]]
        while origin["type"] == "Reroute":
            link = links[origin["inputs"][0]["link"]]
            origin = nodes[link[1]]
        if origin["type"] == "PrimitiveNode" or origin.get("mode", 0) == 2:
            return None  # the value is in the target's widget / the muted node sends nothing
        return [str(origin["id"]), link[2]]

    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL_NODES or node.get("mode", 0) == 2:
            continue
        assert node.get("mode", 0) == 0, f"node {node['id']}: mode {node['mode']} (bypass) is not converted"
        info = object_info[node["type"]]
        inputs, problems = widget_values(node, info)
        assert not problems, problems
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                linked = source(slot["link"])
                if linked is not None:
                    inputs[slot.get("widget", {}).get("name", slot["name"])] = linked
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title", info.get("display_name", node["type"]))}}
    return prompt


def set_inputs(graph: dict, object_info: dict, class_type: str, /, **values) -> None:
    """Set widget inputs of every ``class_type`` node; each name must be a declared input."""
    targets = [node for node in graph.values() if node["class_type"] == class_type]
    assert targets, f"the prompt has no {class_type} node"
    declared = _declared_inputs(object_info[class_type])
    for name, value in values.items():
        assert name in declared, f"{class_type} has no input '{name}' (it has {list(declared)})"
        kind, options = _spec(declared[name])
        if kind == "COMBO":
            assert value in options["options"], f"{class_type}.{name}: {value!r} not in {options['options']}"
        for node in targets:
            node["inputs"][name] = value


def choose(object_info: dict, class_type: str, name: str, *preferred: str) -> str:
    """The first of ``preferred`` that the server offers for a COMBO input."""
    _, options = _spec(_declared_inputs(object_info[class_type])[name])
    for value in preferred:
        if value in options["options"]:
            return value
    pytest.fail(f"{class_type}.{name} offers none of {preferred}: {options['options']}")


def start_image_png(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    import numpy as np
    from PIL import Image

    array = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_mp4(path: Path) -> tuple[int, int, int]:
    """(frames, width, height) of an MP4, by decoding every frame with PyAV."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, stream.codec_context.width, stream.codec_context.height


def decode_frames(path: Path):
    """Every frame of an MP4 as one uint8 array (frames, height, width, 3)."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def read_pngs(paths: list[Path]):
    """PNG frames (SaveImage's files, in order) as one float32 array (frames, height, width, 3)."""
    import numpy as np
    from PIL import Image

    return np.stack([np.asarray(Image.open(path).convert("RGB")) for path in paths]).astype("float32")


WORKER_MODULE = "hunyuan_i2v.parallel.worker"  # the loader's worker processes: python -m <this>


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) from /proc/<pid>/stat; None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the name in parentheses may hold spaces
    return fields[0], int(fields[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def worker_processes(below: int) -> dict[int, int]:
    """pid -> parent pid of each live process that runs the pack's GPU worker module and descends from
    ``below`` (other programs' workers on the same machine do not count)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        stat = _proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None and stat[0] != "Z":
            parents[int(entry.name)] = stat[1]

    def descends(pid: int) -> bool:
        seen = set()
        while pid in parents and pid not in seen:
            seen.add(pid)
            pid = parents[pid]
            if pid == below:
                return True
        return False

    return {pid: parent for pid, parent in parents.items() if descends(pid) and WORKER_MODULE in _cmdline(pid)}


def worker_alive(pid: int) -> bool:
    """Still running (a zombie has ended; a reused pid runs something else)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z" and WORKER_MODULE in _cmdline(pid)


def errors_in(entry: dict) -> list[dict]:
    return [data for kind, data in entry.get("status", {}).get("messages", []) if kind == "execution_error"]


def assert_success(entry: dict, server: ComfyServer) -> None:
    status = entry.get("status", {})
    errors = errors_in(entry)
    assert status.get("status_str") == "success" and status.get("completed"), (
        "prompt failed:\n" + "\n".join(
            f"node {e.get('node_id')} ({e.get('node_type')}): {e.get('exception_type')}: {e.get('exception_message')}\n"
            + "".join(e.get("traceback", [])) for e in errors
        ) + f"\nLog tail:\n{server.log_tail()}"
    )


def saved_videos(entry: dict, prompt: dict, class_type: str = "SaveVideo") -> list[dict]:
    items = []
    for node_id, node in prompt.items():
        if node["class_type"] == class_type:
            output = entry.get("outputs", {}).get(node_id, {})
            items += output.get("images", []) + output.get("videos", []) + output.get("gifs", [])
    return items


@pytest.fixture(scope="module")
def pack_file_lists(models_root, tmp_path_factory) -> set:
    """(node, input) pairs of the pack whose options are the user's files: they change with the models folder."""
    import hyv_pack

    empty = tmp_path_factory.mktemp("no models")
    saved = os.environ.get("HUNYUAN_I2V_MODELS")

    def combos():
        found = {}
        for name, cls in hyv_pack.NODE_CLASS_MAPPINGS.items():
            for section in cls.INPUT_TYPES().values():
                for input_name, entry in section.items():
                    if isinstance(entry[0], list):
                        found[(name, input_name)] = list(entry[0])
        return found

    try:
        os.environ["HUNYUAN_I2V_MODELS"] = str(empty)
        without = combos()
        os.environ["HUNYUAN_I2V_MODELS"] = str(models_root)
        with_models = combos()
    finally:
        if saved is None:
            os.environ.pop("HUNYUAN_I2V_MODELS", None)
        else:
            os.environ["HUNYUAN_I2V_MODELS"] = saved
    return {key for key in with_models if with_models[key] != without.get(key)}


def tiny_local_prompt(server: ComfyServer, version: str, image_name: str, frames: int = 5) -> dict:
    """The shipped local workflow with the tiny models and a small, fast video."""
    info = server.object_info
    prompt = ui_to_api(json.loads(LOCAL_WORKFLOW.read_text()), info)
    if version == "v2":  # single files from diffusion_models / vae
        model = choose(info, "HunyuanI2VLoadTransformer", "model_name", "tiny_v2.safetensors")
        vae = choose(info, "HunyuanI2VLoadVAE", "vae_name", "tiny_vae.safetensors")
    else:  # diffusers folders
        model = choose(info, "HunyuanI2VLoadTransformer", "model_name", f"[diffusers] tiny_{version}")
        vae = choose(info, "HunyuanI2VLoadVAE", "vae_name", f"[diffusers] tiny_{version}")
    set_inputs(prompt, info, "HunyuanI2VLoadTransformer", model_name=model, weight_dtype="fp32")
    set_inputs(prompt, info, "HunyuanI2VLoadVAE", vae_name=vae, dtype="fp32")

    encoders = _declared_inputs(info["HunyuanI2VLoadTextEncoders"])
    values = {"dtype": "fp32"}
    if "text_encoder" in encoders:  # a diffusers folder as text_encoder: vision and text_encoder_2 come from it
        values["text_encoder"] = choose(info, "HunyuanI2VLoadTextEncoders", "text_encoder", f"[diffusers] tiny_{version}")
        for name in ("vision", "text_encoder_2"):
            if name in encoders:
                values[name] = _spec(encoders[name])[1].get("default")
    else:
        values["diffusers_folder"] = choose(info, "HunyuanI2VLoadTextEncoders", "diffusers_folder",
                                            f"tiny_{version}", f"[diffusers] tiny_{version}")
    if "device" in encoders:
        values["device"] = choose(info, "HunyuanI2VLoadTextEncoders", "device", "cpu")
    set_inputs(prompt, info, "HunyuanI2VLoadTextEncoders", **values)

    set_inputs(prompt, info, "LoadImage", image=image_name)
    set_inputs(prompt, info, "HunyuanI2VEncode", width=48, height=32)
    set_inputs(prompt, info, "HunyuanI2VSample", seed=0, steps=2, frames=frames)
    set_inputs(prompt, info, "SaveVideo", filename_prefix=f"video/integration_{version}")
    return prompt


# Quoted text in the prompt: HunyuanVideo-1.5's ByT5 glyph encoder runs too.
PROMPT_15 = 'A cat walks past a sign that says "HELLO", soft window light.'
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")  # what the pack takes as a tokenizer's vocabulary


def comfyui_ships(folder: str) -> bool:
    """Whether the ComfyUI checkout has the bundled tokenizer ``comfy/<folder>`` with its vocabulary (a git
    snapshot may lack Git LFS files, e.g. llama_tokenizer/tokenizer.json)."""
    path = Path(os.environ["COMFYUI_PATH"]).expanduser() / "comfy" / folder
    return any((path / name).is_file() for name in TOKENIZER_FILES)


def tiny15_prompt(server: ComfyServer, layout: str, image_name: str, text_encoder: str = FULL_VOCAB_QWEN,
                  workflow: Path = LOCAL_WORKFLOW) -> dict:
    """A shipped workflow (default: the local one) on the tiny HunyuanVideo-1.5: 64x48, 5 frames, 2 steps, fp32.

    ``layout``: "diffusers" (every part from models/diffusers/tiny15) or "single files" (ComfyUI's repackaged
    layout: tiny15_comfy + tiny15_vae + ``text_encoder`` / tiny_siglip / tiny_byt5)."""
    info = server.object_info
    prompt = ui_to_api(json.loads(workflow.read_text()), info)
    if layout == "diffusers":
        model = choose(info, "HunyuanI2VLoadTransformer", "model_name", "[diffusers] tiny15")
        vae = choose(info, "HunyuanI2VLoadVAE", "vae_name", "[diffusers] tiny15")
        declared = _declared_inputs(info["HunyuanI2VLoadTextEncoders"])
        encoders = {"text_encoder": choose(info, "HunyuanI2VLoadTextEncoders", "text_encoder", "[diffusers] tiny15"),
                    "vision": _spec(declared["vision"])[1].get("default"),
                    "text_encoder_2": _spec(declared["text_encoder_2"])[1].get("default")}
    else:
        assert layout == "single files", layout
        model, vae = "tiny15_comfy.safetensors", "tiny15_vae.safetensors"
        encoders = {"text_encoder": text_encoder, "vision": "tiny_siglip.safetensors",
                    "text_encoder_2": "tiny_byt5.safetensors"}
    set_inputs(prompt, info, "HunyuanI2VLoadTransformer", model_name=model, weight_dtype="fp32", variant="auto")
    set_inputs(prompt, info, "HunyuanI2VLoadVAE", vae_name=vae, dtype="fp32")
    set_inputs(prompt, info, "HunyuanI2VLoadTextEncoders", dtype="fp32", device="cpu", **encoders)
    set_inputs(prompt, info, "LoadImage", image=image_name)
    set_inputs(prompt, info, "HunyuanI2VEncode", prompt=PROMPT_15, resolution="480p", width=64, height=48)
    # steps 2; flow shift, guidance and cfg stay 0 = the loaded model's defaults (cfg 6: the negative prompt runs)
    set_inputs(prompt, info, "HunyuanI2VSample", seed=0, steps=2, frames=5)
    set_inputs(prompt, info, "SaveVideo", filename_prefix=f"video/integration_15_{layout.replace(' ', '_')}")
    return prompt


def assert_saved_video(server: ComfyServer, entry: dict, prompt: dict, expected: tuple[int, int, int],
                       family: str) -> None:
    """One MP4 from Save Video with ``expected`` (frames, width, height), served by /view; the loader's info
    text (PreviewAny) names ``family``."""
    videos = saved_videos(entry, prompt)
    assert len(videos) == 1, entry.get("outputs")
    path = server.output_file(videos[0])
    assert path.suffix == ".mp4" and path.is_file(), (videos[0], sorted(p.name for p in path.parent.iterdir()))
    assert decode_mp4(path) == expected
    served = server.request("GET", "/view", params={"filename": videos[0]["filename"],
                                                    "subfolder": videos[0].get("subfolder", ""), "type": "output"})
    assert served.status_code == 200 and served.content == path.read_bytes()

    previews = [node_id for node_id, node in prompt.items() if node["class_type"] == "PreviewAny"]
    for node_id in previews:  # the transformer's info output, shown as text
        text = "\n".join(entry["outputs"].get(node_id, {}).get("text", []))
        assert family in text, entry["outputs"].get(node_id)


def error_report(entry: dict) -> str:
    """Every execution error of a /history entry: node, message and traceback."""
    return "\n".join(
        f"node {e.get('node_id')} ({e.get('node_type')}): {e.get('exception_type')}: {e.get('exception_message')}\n"
        + "".join(e.get("traceback", [])) for e in errors_in(entry)
    )


def assert_failed_with(entry: dict, node_type: str, *fragments: str) -> None:
    """The prompt failed in ``node_type`` with a message holding every fragment (the pack's own words)."""
    assert entry["status"]["status_str"] == "error", entry["status"]
    errors = errors_in(entry)
    assert errors, entry["status"]
    messages = " | ".join(str(e.get("exception_message", "")) for e in errors)
    missing = [fragment for fragment in fragments if fragment not in messages]
    assert not missing, f"the message lacks {missing}:\n{error_report(entry)}"
    assert errors[0].get("node_type") == node_type, error_report(entry)


def assert_keeps_running(server: ComfyServer, start_image: str, prefix: str) -> None:
    """After a failed prompt: the server is up, its queue drains, and it still runs prompts."""
    server.assert_alive()
    assert server.request("GET", "/system_stats").status_code == 200
    deadline = time.monotonic() + 60
    while True:
        queue = server.get_json("/queue")
        if not queue["queue_running"] and not queue["queue_pending"]:
            break
        assert time.monotonic() < deadline, queue
        time.sleep(0.5)
    # cached loaders, new sampler inputs
    prompt = tiny_local_prompt(server, "v2", start_image, frames=5)
    set_inputs(prompt, server.object_info, "HunyuanI2VSample", seed=1)
    set_inputs(prompt, server.object_info, "SaveVideo", filename_prefix=f"video/{prefix}")
    entry = server.run(prompt)
    assert_success(entry, server)


@pytest.fixture(scope="module")
def start_image(comfy) -> str:
    return comfy.upload_image("hyv start image.png", start_image_png())


# ====================================================================== tests

def test_pack_nodes_are_registered(comfy):
    import hyv_pack

    info = comfy.object_info
    missing = sorted(set(hyv_pack.NODE_CLASS_MAPPINGS) - set(info))
    assert not missing, f"not in /object_info: {missing}. Log tail:\n{comfy.log_tail()}"
    for name in hyv_pack.NODE_CLASS_MAPPINGS:
        assert info[name]["python_module"] == f"custom_nodes.{PACK_FOLDER}", info[name]["python_module"]
        assert info[name]["display_name"] == hyv_pack.NODE_DISPLAY_NAME_MAPPINGS[name]
    log = comfy.log()
    bad = [line for line in log.splitlines()
           if ("IMPORT FAILED" in line or "Cannot import" in line) and PACK_FOLDER in line]
    assert not bad, "\n".join(bad)
    assert re.search(rf"seconds: .*custom_nodes/{re.escape(PACK_FOLDER)}\s*$", log, re.M), (
        "the pack is missing from ComfyUI's custom node import times:\n" + comfy.log_tail()
    )


def test_model_lists_come_from_comfyui_folders(comfy):
    """extra_model_paths.yaml folders reach the pack's loaders through folder_paths."""
    info = comfy.object_info
    model_names = _spec(_declared_inputs(info["HunyuanI2VLoadTransformer"])["model_name"])[1]["options"]
    assert {"tiny_v1.safetensors", "tiny_v2.safetensors", "[diffusers] tiny_v1", "[diffusers] tiny_v2"} <= set(
        model_names), model_names
    vae_names = _spec(_declared_inputs(info["HunyuanI2VLoadVAE"])["vae_name"])[1]["options"]
    assert "tiny_vae.safetensors" in vae_names, vae_names
    # HunyuanVideo-1.5 in the same lists: the loaders take both families.
    assert {"tiny15_comfy.safetensors", "tiny15_tencent.safetensors", "[diffusers] tiny15"} <= set(model_names)
    assert {"tiny15_vae.safetensors", "[diffusers] tiny15"} <= set(vae_names), vae_names
    encoders = _declared_inputs(info["HunyuanI2VLoadTextEncoders"])
    assert {"tiny_qwen25.safetensors", FULL_VOCAB_QWEN, "[diffusers] tiny15"} <= set(
        _spec(encoders["text_encoder"])[1]["options"])
    assert "tiny_siglip.safetensors" in _spec(encoders["vision"])[1]["options"]
    assert "tiny_byt5.safetensors" in _spec(encoders["text_encoder_2"])[1]["options"]


def test_workflow_checker_finds_broken_workflows(comfy, pack_file_lists):
    """The checker below is only worth its pass if it fails on the mistakes it claims to catch."""
    info = comfy.object_info
    assert not validate_workflow(json.loads(LOCAL_WORKFLOW.read_text()), info, pack_file_lists)

    def broken(change) -> list[str]:
        workflow = json.loads(LOCAL_WORKFLOW.read_text())
        nodes = {node["type"]: node for node in workflow["nodes"]}
        change(workflow, nodes)
        return validate_workflow(workflow, info, pack_file_lists)

    def set_widget(node_type, name, value):
        def change(workflow, nodes):
            names = [n for n, kind, options in _widget_inputs(info[node_type])
                     for n in [n] + _extra_values(n, kind, options)]
            nodes[node_type]["widgets_values"][names.index(name)] = value
        return change

    cases = {
        "a widget value missing": lambda w, n: n["HunyuanI2VSample"]["widgets_values"].pop(),
        "a widget value too many": lambda w, n: n["HunyuanI2VDecode"]["widgets_values"].append(1),
        "the seed's control value missing": lambda w, n: n["HunyuanI2VSample"]["widgets_values"].pop(1),
        "an unknown combo option": set_widget("HunyuanI2VSample", "cache", "turbo"),
        "a core combo option": set_widget("SaveVideo", "codec", "vp9"),
        "below min": set_widget("HunyuanI2VSample", "steps", -1),  # 0 is allowed: the model's default
        "above max": set_widget("HunyuanI2VEncode", "width", 99999),
        "a string for a number": set_widget("HunyuanI2VSample", "flow_shift", "7"),
        "a bad control value": set_widget("HunyuanI2VSample", "control_after_generate", "sometimes"),
        "an unknown node type": lambda w, n: n["HunyuanI2VDecode"].update(type="HunyuanI2VDecodeOld"),
        "a wrong link type": lambda w, n: [link.__setitem__(5, "IMAGE") for link in w["links"] if link[5] == "VIDEO"],
        "a wrong output type": lambda w, n: n["HunyuanI2VLoadVAE"]["outputs"][0].update(type="VAE"),
        "an unconnected required input": lambda w, n: n["HunyuanI2VDecode"]["inputs"][1].update(link=None),
    }
    silent = [name for name, change in cases.items() if not broken(change)]
    assert not silent, f"the workflow checker missed: {silent}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_matches_object_info(path, comfy, pack_file_lists):
    problems = validate_workflow(json.loads(path.read_text()), comfy.object_info, pack_file_lists)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


# v1 (latent concat) videos lose their first 4 decoded frames, as in the reference pipeline,
# so v1 samples 9 frames to save 5.
@pytest.mark.parametrize("version, frames", [("v2", 5), ("v1", 9)])
def test_local_workflow_runs_on_tiny_models(version, frames, comfy, start_image):
    prompt = tiny_local_prompt(comfy, version, start_image, frames=frames)
    entry = comfy.run(prompt)
    assert_success(entry, comfy)
    assert_saved_video(comfy, entry, prompt, (5, 48, 32), "HunyuanVideo-I2V")


UNLOADED_LINE = "HunyuanVideo I2V: unloaded"  # what the pack logs when ComfyUI's unloading releases one of its models


def test_unload_models_releases_a_resident_transformer(comfy, start_image):
    """Offload mode none keeps the transformer on the device after sampling; ComfyUI's "Unload models"
    (POST /free, which runs unload_all_models, as its recovery after an out-of-memory error does) must
    release it. On the CPU "released" is the pack's own accounting: it logs the model it moved to the
    offload device and holds it no more."""
    prompt = tiny_local_prompt(comfy, "v2", start_image, frames=5)
    set_inputs(prompt, comfy.object_info, "HunyuanI2VLoadTransformer", offload_mode="none")
    set_inputs(prompt, comfy.object_info, "SaveVideo", filename_prefix="video/resident")
    before = comfy.log().count(UNLOADED_LINE)
    assert_success(comfy.run(prompt), comfy)
    assert comfy.log().count(UNLOADED_LINE) == before, "nothing asked for memory, yet the model was unloaded"
    response = comfy.request("POST", "/free", json={"unload_models": True})
    assert response.status_code == 200
    deadline = time.monotonic() + 30  # ComfyUI's prompt worker reads the flag between prompts
    while comfy.log().count(UNLOADED_LINE) == before:
        assert time.monotonic() < deadline, f"POST /free did not release the transformer. Log tail:\n{comfy.log_tail()}"
        time.sleep(0.5)
    line = [x for x in comfy.log().splitlines() if UNLOADED_LINE in x][-1]
    assert "HunyuanVideoTransformer3DModel" in line, line
    # The same loaded model runs again: it comes back to the device, and is held again.
    set_inputs(prompt, comfy.object_info, "HunyuanI2VSample", seed=3)
    assert_success(comfy.run(prompt), comfy)
    comfy.request("POST", "/free", json={"unload_models": True})
    deadline = time.monotonic() + 30
    while comfy.log().count(UNLOADED_LINE) < before + 2:
        assert time.monotonic() < deadline, "the second /free did not release the transformer"
        time.sleep(0.5)


@pytest.mark.parametrize("layout", ["diffusers", "single files"])
def test_local_workflow_runs_on_tiny_hunyuan_video_15(layout, comfy, start_image):
    """HunyuanVideo-1.5 through the same graph: (a) its diffusers folder; (b) ComfyUI's single files.

    In (b) the Qwen2.5 tokenizer is ComfyUI's own (comfy/text_encoders/qwen25_tokenizer) when the checkout
    ships it, else models/diffusers/tiny15's; the full-vocabulary tiny Qwen file takes either."""
    prompt = tiny15_prompt(comfy, layout, start_image)
    entry = comfy.run(prompt)
    assert_success(entry, comfy)
    assert_saved_video(comfy, entry, prompt, (5, 64, 48), "HunyuanVideo-1.5")


UPSCALE_WORKFLOWS = {
    # workflow -> the SR stages' (title resolution, tiny transformer, tiny upsampler, size) on the 64x48 base
    "Hunyuan 1.5 upscale 720p to 1080p.json": [
        ("1080p", "720p", "tiny15_720p_sr_comfy.safetensors", "tiny_upsampler_720p.safetensors", (96, 64))],
    "Hunyuan 1.5 upscale 480p to 1080p, small GPU.json": [
        ("720p", "720p", "tiny15_720p_sr_comfy.safetensors", "tiny_upsampler_720p.safetensors", (96, 64)),
        ("1080p", "1080p", "tiny15_sr_tencent.safetensors", "tiny_upsampler_1080p.safetensors", (128, 96))],
}


def set_titled(graph: dict, object_info: dict, title: str, **values) -> None:
    """Set widget inputs of the one node with ``title`` (the SR stages repeat the base stage's node types)."""
    targets = [node for node in graph.values() if node["_meta"]["title"] == title]
    assert len(targets) == 1, (title, [node["_meta"]["title"] for node in graph.values()])
    declared = _declared_inputs(object_info[targets[0]["class_type"]])
    for name, value in values.items():
        kind, options = _spec(declared[name])
        assert kind != "COMBO" or value in options["options"], f"{title}.{name}: {value!r} not offered"
        targets[0]["inputs"][name] = value


@pytest.mark.parametrize("workflow", sorted(UPSCALE_WORKFLOWS))
def test_super_resolution_workflows_run_on_tiny_models(workflow, comfy, start_image):
    """The shipped HunyuanVideo-1.5 super-resolution workflows on the tiny models: base 64x48, then each SR stage
    (its own transformer, latent upsampler and Sample) to a larger size; Save Video writes the last one's MP4."""
    prompt = tiny15_prompt(comfy, "single files", start_image, workflow=ROOT / "workflows" / workflow)
    info = comfy.object_info
    base = next(n["_meta"]["title"] for n in prompt.values() if n["class_type"] == "HunyuanI2VLoadTransformer"
                and "SR" not in n["_meta"]["title"])
    set_titled(prompt, info, base, model_name="tiny15_comfy.safetensors", offload_mode="model")
    for title, release, model, upsampler, (width, height) in UPSCALE_WORKFLOWS[workflow]:
        set_titled(prompt, info, f"Load SR transformer ({title})", model_name=model, weight_dtype="fp32",
                   offload_mode="model")
        set_titled(prompt, info, f"Load latent upsampler ({title})", upsampler_name=upsampler)
        set_titled(prompt, info, f"Super-resolution to {title}", resolution=release, width=width, height=height)
        set_titled(prompt, info, f"Sample {title} (SR)", steps=2)
    set_inputs(prompt, info, "SaveVideo", filename_prefix=f"video/integration_sr_{len(UPSCALE_WORKFLOWS[workflow])}")
    entry = comfy.run(prompt)
    assert_success(entry, comfy)
    width, height = UPSCALE_WORKFLOWS[workflow][-1][-1]
    assert_saved_video(comfy, entry, prompt, (5, width, height), "HunyuanVideo-1.5")


def test_hunyuan_video_15_single_files_pick_comfyuis_tokenizer_first(comfy, start_image):
    """tiny_qwen25.safetensors embeds only the tiny tokenizer's few hundred ids. Where ComfyUI ships its Qwen2.5
    tokenizer the pack takes that one before models/diffusers, and must refuse the pair with its own message;
    where it does not, the tiny15 diffusers folder's tokenizer is used and the prompt runs."""
    prompt = tiny15_prompt(comfy, "single files", start_image, text_encoder="tiny_qwen25.safetensors")
    set_inputs(prompt, comfy.object_info, "SaveVideo", filename_prefix="video/integration_15_tiny_vocab")
    entry = comfy.run(prompt)
    if not comfyui_ships("text_encoders/qwen25_tokenizer"):
        assert_success(entry, comfy)
        assert_saved_video(comfy, entry, prompt, (5, 64, 48), "HunyuanVideo-1.5")
        return
    assert_failed_with(entry, "HunyuanI2VLoadTextEncoders", "do not belong together", "tiny_qwen25.safetensors")
    comfy.assert_alive()


def test_bad_frames_fail_with_the_pack_message_and_server_stays_up(comfy, start_image):
    prompt = tiny_local_prompt(comfy, "v2", start_image, frames=10)
    entry = comfy.run(prompt)
    assert_failed_with(entry, "HunyuanI2VSample", "frames must be 4n+1")
    assert_keeps_running(comfy, start_image, "after_error")


def test_family_mismatch_fails_with_the_pack_message_and_server_stays_up(comfy, start_image):
    """A HunyuanVideo-1.5 VAE wired into the 13 B graph is refused, naming the file the 13 B model needs."""
    prompt = tiny_local_prompt(comfy, "v2", start_image)
    set_inputs(prompt, comfy.object_info, "HunyuanI2VLoadVAE", vae_name="tiny15_vae.safetensors")
    set_inputs(prompt, comfy.object_info, "SaveVideo", filename_prefix="video/family_mismatch")
    entry = comfy.run(prompt)
    assert_failed_with(entry, "HunyuanI2VEncode", "parts of different models cannot work together",
                       "HunyuanVideo-1.5", "HunyuanVideo-I2V (13 B)")
    assert not saved_videos(entry, prompt), entry.get("outputs")
    assert_keeps_running(comfy, start_image, "after_family_mismatch")


def test_wavespeed_workflow_against_stand_in_server(comfy, start_image):
    if comfy.stand_in is None:
        pytest.skip(f"WaveSpeed part skipped: {comfy.stand_in_reason}")
    if not WAVESPEED_WORKFLOW.exists():
        pytest.skip(f"WaveSpeed part skipped: {WAVESPEED_WORKFLOW} does not exist")
    info = comfy.object_info
    prompt = ui_to_api(json.loads(WAVESPEED_WORKFLOW.read_text()), info)
    set_inputs(prompt, info, "LoadImage", image=start_image)
    set_inputs(prompt, info, "HunyuanVideoI2VWaveSpeed", seed=7, timeout=60,
               prompt="A test video from the integration test.")
    set_inputs(prompt, info, "SaveVideo", filename_prefix="video/integration_wavespeed")
    stand_in = comfy.stand_in
    before = stand_in.tasks_created

    entry = comfy.run(prompt, timeout=180)
    assert_success(entry, comfy)
    assert stand_in.tasks_created == before + 1
    keys = {h.get("Authorization") or h.get("authorization") for h in stand_in.headers_seen("/api/v3/")}
    assert keys == {f"Bearer {stand_in.api_key}"}, keys

    videos = saved_videos(entry, prompt)
    assert len(videos) == 1, entry.get("outputs")
    frames, width, height = decode_mp4(comfy.output_file(videos[0]))
    task = list(stand_in.tasks.values())[-1]
    expected_frames, expected_w, expected_h = _decoded_bytes(stand_in.video_for(task), comfy.base / "expected.mp4")
    assert (frames, width, height) == (expected_frames, expected_w, expected_h)
    own = saved_videos(entry, prompt, "HunyuanVideoI2VWaveSpeed")  # the node's own copy of the MP4
    assert own and all(comfy.output_file(item).is_file() for item in own), entry.get("outputs")


def _decoded_bytes(data: bytes, path: Path) -> tuple[int, int, int]:
    path.write_bytes(data)
    return decode_mp4(path)


def test_local_workflow_with_previews_on(models_root, tmp_path_factory):
    """ComfyUI started with --preview-method auto (a common setting): the sampler's previews must not break it."""
    with comfy_server(models_root, tmp_path_factory, ("--preview-method", "auto"), wavespeed=False) as server:
        image = server.upload_image("hyv start image.png", start_image_png())
        entry = server.run(tiny_local_prompt(server, "v2", image))
        assert_success(entry, server)


def test_multi_gpu_workflow_runs_on_a_worker_pool(models15_root, full_vocab_root, tmp_path_factory):
    """The shipped multi-GPU workflow (gpus 4) with gpus 2 on the CPU server: the loader starts 2 gloo worker
    processes, sampling goes to them, and the video matches the same prompt with gpus 1. The workers are the
    server's children while it runs, and none outlives it: only ComfyUI's own process is sent SIGTERM (not
    its process group), so the workers have to notice by themselves that it has gone."""
    gpus = 2  # the tiny 1.5 model has 2 attention heads
    workers: dict[int, int] = {}
    try:
        with comfy_server((models15_root, full_vocab_root), tmp_path_factory, wavespeed=False) as server:
            info = server.object_info
            image = server.upload_image("hyv start image.png", start_image_png())
            shipped = ui_to_api(json.loads(MULTI_GPU_WORKFLOW.read_text()), info)
            assert [node["inputs"]["gpus"] for node in shipped.values()
                    if node["class_type"] == "HunyuanI2VLoadTransformer"] == [4], shipped
            assert not worker_processes_of(server), "worker processes before any prompt"

            frames, videos, texts = {}, {}, {}
            for count in (1, gpus):  # one process first: the pool's workers are the last prompt's
                prompt = tiny15_prompt(server, "single files", image, workflow=MULTI_GPU_WORKFLOW)
                set_inputs(prompt, info, "HunyuanI2VLoadTransformer", gpus=count)
                set_inputs(prompt, info, "SaveVideo", filename_prefix=f"video/integration_15_gpus_{count}")
                # The decoded frames before H.264 as well, losslessly (PNG): see the comparison below.
                decode = next(node_id for node_id, node in prompt.items() if node["class_type"] == "HunyuanI2VDecode")
                prompt["png"] = {"class_type": "SaveImage", "inputs": {
                    "images": [decode, 0], "filename_prefix": f"frames/integration_15_gpus_{count}"}}
                entry = server.run(prompt)
                assert_success(entry, server)
                assert_saved_video(server, entry, prompt, (5, 64, 48), "HunyuanVideo-1.5")
                videos[count] = decode_frames(server.output_file(saved_videos(entry, prompt)[0])).astype("float32")
                frames[count] = read_pngs([server.output_file(item) for item in entry["outputs"]["png"]["images"]])
                texts[count] = "\n".join(line for node_id, node in prompt.items()
                                         if node["class_type"] == "PreviewAny"
                                         for line in entry["outputs"].get(node_id, {}).get("text", []))
                if count == 1:
                    assert not worker_processes_of(server), "gpus 1 started worker processes"

            assert f"Split over {gpus} GPUs" in texts[gpus], texts[gpus]
            assert "Split over" not in texts[1], texts[1]
            # The frames agree to float rounding (a pixel may land one level off). The MP4s only roughly:
            # ComfyUI's H.264 encoding of this noise-like tiny video is not repeatable (the same VIDEO saved
            # twice in one prompt has decoded 0.7 levels apart on average, some pixels 50 levels apart; up to
            # 1.2 on average seen), while fp8 weights instead of fp32 already move the MP4 by about 7 levels.
            assert frames[gpus].shape == frames[1].shape == (5, 48, 64, 3)
            difference = abs(frames[gpus] - frames[1])
            assert difference.max() <= 2 and difference.mean() < 0.05, (
                f"frames with gpus {gpus} against gpus 1: mean {difference.mean():.4f}, max {difference.max():.0f} "
                "of 255 levels")
            assert videos[gpus].shape == videos[1].shape == (5, 48, 64, 3)
            difference = abs(videos[gpus] - videos[1])
            assert difference.mean() < 3, (f"MP4 with gpus {gpus} against gpus 1: mean {difference.mean():.3f}, "
                                           f"max {difference.max():.0f} of 255 levels")

            # The pool stays loaded (ComfyUI caches the loader's output): its workers are the server's children,
            # and no other process below the server runs the worker module.
            workers = worker_processes(below=server.process.pid)
            children = {pid for pid, parent in workers.items() if parent == server.process.pid}
            assert len(children) == gpus and set(workers) == children, (
                f"{gpus} worker processes as children of ComfyUI (pid {server.process.pid}) expected; "
                f"pid -> parent of each worker process below it: {workers}")

            server.process.send_signal(signal.SIGTERM)  # ComfyUI's own process, not its process group
            try:
                server.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"ComfyUI did not stop on SIGTERM within {STOP_TIMEOUT_S:.0f} s")
            deadline = time.monotonic() + WORKER_EXIT_TIMEOUT_S
            while any(worker_alive(pid) for pid in children) and time.monotonic() < deadline:
                time.sleep(0.2)
            alive = [pid for pid in children if worker_alive(pid)]
            assert not alive, (f"worker processes {alive} still run {WORKER_EXIT_TIMEOUT_S:.0f} s after ComfyUI "
                               f"stopped. Log tail:\n{server.log_tail()}")
    finally:  # a worker the test found alive is killed here, by its pid, so that none is left behind
        for pid in workers:
            if worker_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def worker_processes_of(server: ComfyServer) -> dict[int, int]:
    """The pack's worker processes below ``server``'s ComfyUI process."""
    return worker_processes(below=server.process.pid)


@pytest.fixture(scope="module")
def single_file_comfy(models_root, models15_root, full_vocab_root, tmp_path_factory):
    """A ComfyUI whose models folders hold only ComfyUI's single files (no models/diffusers), both families."""
    folders = ("diffusion_models", "vae", "text_encoders", "clip_vision")
    with comfy_server((models_root, models15_root, full_vocab_root), tmp_path_factory, wavespeed=False,
                      folders=folders) as server:
        info = server.object_info
        assert not any("[diffusers]" in str(option) for entry in _declared_inputs(info["HunyuanI2VLoadTransformer"])
                       .values() for option in _spec(entry)[1].get("options", []))
        yield server


def test_hunyuan_video_15_single_files_without_diffusers_folders(single_file_comfy):
    """HunyuanVideo-1.5 from ComfyUI's repackaged files alone: the Qwen2.5 tokenizer must be the one ComfyUI
    ships (comfy/text_encoders/qwen25_tokenizer), which the full-vocabulary tiny Qwen file takes."""
    server = single_file_comfy
    image = server.upload_image("hyv start image.png", start_image_png())
    prompt = tiny15_prompt(server, "single files", image)
    set_inputs(prompt, server.object_info, "SaveVideo", filename_prefix="video/integration_15_no_diffusers")
    entry = server.run(prompt)
    if not comfyui_ships("text_encoders/qwen25_tokenizer"):
        # Nowhere to take it from: the message says where it looked and what to add.
        assert_failed_with(entry, "HunyuanI2VLoadTextEncoders", "No Qwen2.5-VL tokenizer found", "qwen25_tokenizer")
        pytest.skip("this ComfyUI checkout lacks comfy/text_encoders/qwen25_tokenizer")
    assert_success(entry, server)
    assert_saved_video(server, entry, prompt, (5, 64, 48), "HunyuanVideo-1.5")


def test_single_file_text_encoders_use_comfyui_tokenizers(single_file_comfy):
    """A user with only ComfyUI's repackaged files (no models/diffusers folder): the shipped workflow's
    single-file text encoders must find the tokenizers ComfyUI itself ships."""
    server = single_file_comfy
    image = server.upload_image("hyv start image.png", start_image_png())
    info = server.object_info
    prompt = ui_to_api(json.loads(LOCAL_WORKFLOW.read_text()), info)
    set_inputs(prompt, info, "HunyuanI2VLoadTransformer", model_name="tiny_v2.safetensors", weight_dtype="fp32")
    set_inputs(prompt, info, "HunyuanI2VLoadVAE", vae_name="tiny_vae.safetensors", dtype="fp32")
    set_inputs(prompt, info, "HunyuanI2VLoadTextEncoders", text_encoder="tiny_llava_llama3.safetensors",
               vision="tiny_llava_llama3_vision.safetensors", text_encoder_2="tiny_clip_l.safetensors",
               dtype="fp32")
    set_inputs(prompt, info, "LoadImage", image=image)
    set_inputs(prompt, info, "HunyuanI2VEncode", width=48, height=32)
    set_inputs(prompt, info, "HunyuanI2VSample", seed=0, steps=2, frames=5)
    entry = server.run(prompt)
    failures = " | ".join(str(e.get("exception_message")) for e in errors_in(entry))
    if not comfyui_ships("text_encoders/llama_tokenizer"):
        # Looked in ComfyUI's folder, which this checkout has without its Git LFS file: the message names it.
        assert "looked in" in failures and "llama_tokenizer" in failures, failures
        pytest.skip("this ComfyUI checkout lacks comfy/text_encoders/llama_tokenizer/tokenizer.json (Git LFS)")
    # Labels such as "Llama-3" hold a dash.
    assert not re.search(r"No [\w.-]+ tokenizer found", failures), failures
    # ComfyUI's real Llama-3 tokenizer was found and loaded; the tiny model's vocabulary cannot take it,
    # and the loader says so instead of failing obscurely.
    assert "do not belong together" in failures, failures
