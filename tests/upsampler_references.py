"""Run a latent upsampler through another project's own classes, in a process of its own (their imports stay there).

    python upsampler_references.py comfyui|tencent TREE KIND WEIGHTS INPUT OUTPUT HEIGHT WIDTH

comfyui: ComfyUI's ``comfy/ldm/hunyuan_video/upsampler.py`` classes, configured from the tensors as its
``LatentUpscaleModelLoader`` does, loaded with ``load_state_dict(strict=True)``; the "chain" output adds its
``HunyuanVideo15LatentUpscaleWithModel`` resize (``comfy.utils.common_upscale``, bilinear, no crop) in front.
tencent: Tencent's ``SRTo720pUpsampler`` / ``SRTo1080pUpsampler.from_pretrained(WEIGHTS)`` (a release folder); the
"chain" output is its SR pipeline's per-frame bilinear resize followed by the network.
INPUT holds "latent" (low resolution) and "resized" (already at the SR size); OUTPUT gets "module" (the network
on "resized") and "chain" (resize + network on "latent"). HEIGHT, WIDTH: the SR latent size.
"""

import sys
import types

import torch
from safetensors.torch import load_file, save_file


def comfyui(tree, kind, weights, latent, resized, size):
    sys.path.insert(0, tree)
    sys.argv = ["main.py", "--cpu"]  # its model management picks a CUDA device at import unless told
    import comfy.options

    comfy.options.enable_args_parsing()
    for name in ("model_management", "model_patcher"):  # bare imports used only by its wrapper class
        sys.modules.setdefault(name, types.ModuleType(name))
    import comfy.utils
    from comfy.ldm.hunyuan_video.upsampler import SRModel3DV2, Upsampler

    sd = load_file(weights)
    if kind == "720p":
        config = {
            "in_channels": sd["in_conv.conv.weight"].shape[1],
            "out_channels": sd["out_conv.conv.weight"].shape[0],
            "hidden_channels": sd["in_conv.conv.weight"].shape[0],
            "num_blocks": len([k for k in sd if k.startswith("blocks.") and k.endswith(".block.0.conv.weight")]),
            "global_residual": False,
        }
        model = SRModel3DV2(**config)
    else:
        sd = {key.replace("nin_shortcut", "nin_shortcut.conv", 1): value for key, value in sd.items()}
        stages = len([k for k in sd if k.startswith("up.") and k.endswith(".block.0.conv1.conv.weight")])
        config = {
            "z_channels": sd["conv_in.conv.weight"].shape[1],
            "out_channels": sd["conv_out.conv.weight"].shape[0],
            "block_out_channels": tuple(sd[f"up.{i}.block.0.conv1.conv.weight"].shape[0] for i in range(stages)),
        }
        model = Upsampler(**config)
    model.load_state_dict(sd, strict=True)
    model = model.float().eval()
    scaled = comfy.utils.common_upscale(latent, size[1], size[0], "bilinear", "disabled")
    return model(resized), model(scaled)


def tencent(tree, kind, folder, latent, resized, size):
    sys.path.insert(0, tree)
    try:
        import loguru  # noqa: F401
    except ImportError:  # its VAE module imports it for logging only
        sys.modules["loguru"] = types.ModuleType("loguru")
    from einops import rearrange
    from hyvideo.models.transformers.modules.upsample import SRTo720pUpsampler, SRTo1080pUpsampler

    model_class = SRTo720pUpsampler if kind == "720p" else SRTo1080pUpsampler
    model = model_class.from_pretrained(folder).float().eval()
    # Its SR pipeline's resize, as written there (hunyuan_video_sr_pipeline.py), then the network in float32.
    bsz = latent.shape[0]
    x = rearrange(latent, "b c f h w -> (b f) c h w")
    x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    x = rearrange(x, "(b f) c h w -> b c f h w", b=bsz)
    return model(resized), model(x.to(torch.float32))


def main():
    which, tree, kind, weights, inputs, output, height, width = sys.argv[1:9]
    tensors = load_file(inputs)
    run = {"comfyui": comfyui, "tencent": tencent}[which]
    with torch.no_grad():
        module, chain = run(tree, kind, weights, tensors["latent"], tensors["resized"], (int(height), int(width)))
    save_file({"module": module.contiguous(), "chain": chain.contiguous()}, output)


if __name__ == "__main__":
    main()
