"""Rewrites the README's model-file tables from the engine's table (hunyuan_i2v/model_files.py).

    python tools/make_model_tables.py

tests/test_model_files.py fails when the README and the table disagree.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_table():
    """The table module alone: it imports nothing of the pack, so no torch is needed here."""
    spec = importlib.util.spec_from_file_location("model_files", ROOT / "hunyuan_i2v" / "model_files.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["model_files"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main() -> None:
    readme = ROOT / "README.md"
    readme.write_text(load_table().replace_readme_tables(readme.read_text()))
    print("wrote the model-file tables of", readme.name)


if __name__ == "__main__":
    main()
