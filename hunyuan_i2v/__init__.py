"""HunyuanVideo-I2V engine: everything the nodes do, with no ComfyUI import.

Modules are imported on use (torch, diffusers and transformers are heavy), so
``import hunyuan_i2v`` itself is cheap.
"""

__version__ = "0.1.0"
