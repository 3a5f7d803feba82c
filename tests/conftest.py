"""Load the pack the way ComfyUI does: as a package from its folder path.

Tests import everything through ``hyv_pack`` (the repository root loaded as a
package), so node modules and engine modules are the same objects the nodes
use, and relative imports are exercised on every run.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACK_NAME = "hyv_pack"


def load_pack(name: str = PACK_NAME):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


load_pack()
