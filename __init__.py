"""HunyuanVideo-I2V for ComfyUI.

ComfyUI imports this folder as a package under whatever name the folder has,
so everything below is imported relatively.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = None
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
