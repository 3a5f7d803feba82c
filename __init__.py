"""HunyuanVideo-I2V for ComfyUI.

ComfyUI imports this folder as a package under whatever name the folder has,
so everything below is imported relatively.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

# ComfyUI serves this folder at /extensions/<folder name>/; its frontend shows web/docs/<NodeClass>.md as the
# node's help page. It holds no .js, so no frontend extension is loaded from it.
WEB_DIRECTORY = "./web"
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
