"""Where tokenizers come from, and reading them safely.

Single-file text encoders carry no tokenizer. A running ComfyUI ships the ones
its own loaders use; a diffusers folder of the same family ships them too.
This module makes that choice for the nodes and the command line alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelFileError

VOCABULARY_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True)
class TokenizerKind:
    label: str  # what the user reads in messages
    comfy_folder: str  # inside ComfyUI's ``comfy`` package
    diffusers_subfolder: str  # inside a diffusers folder of the family
    pipelines: tuple[str, ...]  # model_index.json class names of that family


TOKENIZERS = {
    "llama": TokenizerKind("Llama-3", "text_encoders/llama_tokenizer", "tokenizer", ("HunyuanVideoImageToVideoPipeline",)),
    "clip": TokenizerKind("CLIP", "sd1_tokenizer", "tokenizer_2", ("HunyuanVideoImageToVideoPipeline",)),
    "qwen25": TokenizerKind(
        "Qwen2.5-VL", "text_encoders/qwen25_tokenizer", "tokenizer",
        ("HunyuanVideo15ImageToVideoPipeline", "HunyuanVideo15Pipeline"),
    ),
}


def pipeline_class(folder: Path) -> str:
    index = folder / "model_index.json"
    try:
        return json.loads(index.read_text()).get("_class_name", "") if index.exists() else ""
    except (OSError, json.JSONDecodeError):
        return ""


def find_tokenizer_dir(kind: str, comfy_package: Path | None, diffusers_folders: list[Path]) -> Path:
    """ComfyUI's bundled tokenizer for ``kind``, else the one in a diffusers folder of the same family."""
    spec = TOKENIZERS[kind]
    tried = []
    if comfy_package is not None:
        bundled = Path(comfy_package) / spec.comfy_folder
        if any((bundled / name).exists() for name in VOCABULARY_FILES):
            return bundled
        tried.append(str(bundled))
    for folder in diffusers_folders:
        candidate = Path(folder) / spec.diffusers_subfolder
        if pipeline_class(Path(folder)) in spec.pipelines and any((candidate / n).exists() for n in VOCABULARY_FILES):
            return candidate
    where = f" (looked in {', '.join(tried)})" if tried else ""
    raise ModelFileError(
        f"No {spec.label} tokenizer found{where}. Single-file text encoders need one: run inside ComfyUI (it ships "
        f"comfy/{spec.comfy_folder}; in a git checkout run 'git lfs pull'), or put a diffusers folder of the same "
        f"model (model_index.json naming {spec.pipelines[0]}) with its {spec.diffusers_subfolder}/ in models/diffusers."
    )


def load_tokenizer(folder: Path, what: str):
    from transformers import AutoTokenizer

    # Without its vocabulary file transformers quietly builds a tokenizer that
    # knows only the special tokens; refuse that instead of encoding garbage.
    folder = Path(folder)
    found = [name for name in VOCABULARY_FILES if (folder / name).exists()]
    if not folder.is_dir() or not found:
        raise ModelFileError(
            f"The {what} tokenizer is missing: '{folder}' holds none of {', '.join(VOCABULARY_FILES)}. "
            "Copy the tokenizer folder of the model's diffusers conversion there (in a git checkout of "
            "ComfyUI, run 'git lfs pull' to fetch its tokenizer.json)."
        )
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds here
        raise ModelFileError(f"The {what} tokenizer in '{folder}' could not be read: {exc}") from exc


def check_vocabulary(tokenizer, rows: int, what: str, model_source: str) -> None:
    """A tokenizer whose ids run past the model's embedding table belongs to another model."""
    if len(tokenizer) > rows:
        raise ModelFileError(
            f"The {what} tokenizer has {len(tokenizer)} tokens but {model_source} embeds only {rows}: the text "
            "encoder and tokenizer do not belong together. Use the tokenizer that comes with the text encoder."
        )
