"""Node registry: each module in ``_NODE_MODULES`` exports its own mappings."""

from importlib import import_module

# One module per role; each defines NODE_CLASS_MAPPINGS / NODE_DISPLAY_NAME_MAPPINGS.
_NODE_MODULES = (
    "loaders",
    "local",
    "super_resolution",
    "wavespeed_node",
)

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}

for _name in _NODE_MODULES:
    _module = import_module(f".{_name}", __name__)
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
