"""Hunyuan image-to-video engine (HunyuanVideo-1.5 and HunyuanVideo-I2V 13 B): everything the nodes do, with no ComfyUI import.

Where things live: ``hunyuan_video_15/`` and ``hunyuan_video_13b/`` hold what only one model family knows
(key mapping, conditioning, sampling, defaults); ``shared/`` what both use; ``loading`` and ``stages`` the
entry points the nodes and the command line call; ``wavespeed/`` the remote path.

Modules are imported on use (torch, diffusers and transformers are heavy), so
``import hunyuan_i2v`` itself is cheap.
"""

__version__ = "0.1.0"
