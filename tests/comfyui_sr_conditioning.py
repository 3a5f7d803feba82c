"""Build HunyuanVideo-1.5's super-resolution conditioning through ComfyUI's own code, in a process of its own.

    python comfyui_sr_conditioning.py TREE INPUT OUTPUT

TREE: a ComfyUI >= 0.3.70 tree. INPUT holds "latent" (the upsampled latent, ComfyUI's unscaled LATENT samples),
"image_latent" (what the VAE returns for the start image, unscaled), "start_image" ([1, H, W, 3] in 0..1), "seed"
and "augmentations" (the noise_augmentation values to run). Runs, as a ComfyUI graph does:
- its ``HunyuanVideo15SuperResolution`` node (the VAE is a stand-in that returns "image_latent" and records the
  pixels it was given) -> "node_concat" (the conditioning's ``concat_latent_image``), "vae_pixels_shape";
- its sampler's conditioning pass (``comfy.samplers.process_conds``) over the node's positive conditioning, on the
  ``HunyuanVideo15_SR_Distilled`` model class configured by its own ``supported_models`` entry (no network built),
  with the sampler's seed -> "early_<i>" (the ``c_concat`` for augmentations[i]), "disable_time_r", "has_clip_fea";
- the same pass over the plain text conditioning, which its 1080p template's second sampler reads
  -> "late", "late_has_clip_fea";
- "scale_factor": its HunyuanVideo-1.5 latent format's VAE scale.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

import torch
from safetensors.torch import load_file, save_file


def stand_in_missing(names=("torchvision", "torchaudio", "torchsde")):
    """Test infrastructure only: ComfyUI imports these at start-up (torchsde for its SDE samplers), and the registries
    have no CPU build of torchvision/torchaudio for this torch; importable stand-ins for the missing ones, never
    called here (the node and the conditioning pass do not touch them)."""

    def attribute(name):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})  # a class: usable as a base class or in a type hint at import time

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname, path, target=None):
            if fullname.split(".")[0] in missing:
                return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            return None

        def create_module(self, spec):
            module = types.ModuleType(spec.name)
            module.__path__ = []
            module.__getattr__ = attribute
            return module

        def exec_module(self, module):
            pass

    missing = {name for name in names if importlib.util.find_spec(name) is None}
    if missing:
        sys.meta_path.append(Finder())
        try:  # transformers must not take the stand-in for the real package
            import transformers.utils.import_utils as import_utils

            import_utils.is_torchvision_available = lambda: False
        except ImportError:
            pass


class StandInVAE:
    """What the node calls: ``encode(pixels [B, H, W, 3]) -> latent [B, C, f, h, w]`` (unscaled, as ComfyUI's)."""

    def __init__(self, latent):
        self.latent = latent
        self.pixels_shape = None

    def encode(self, pixels):
        self.pixels_shape = tuple(pixels.shape)
        return self.latent.clone()


def main():
    tree, inputs, output = sys.argv[1:4]
    sys.path.insert(0, tree)
    sys.argv = ["main.py", "--cpu"]  # its model management picks a CUDA device at import unless told
    stand_in_missing()
    import comfy.options

    comfy.options.enable_args_parsing()
    import comfy.latent_formats
    import comfy.sampler_helpers
    import comfy.samplers
    import comfy.supported_models
    from comfy_extras.nodes_hunyuan import HunyuanVideo15SuperResolution

    tensors = load_file(inputs)
    latent, seed = tensors["latent"], int(tensors["seed"].item())
    text = torch.zeros(1, 4, 8)  # the prompt's states: not read by the concat
    vae = StandInVAE(tensors["image_latent"])
    vision = types.SimpleNamespace(last_hidden_state=torch.zeros(1, 729, 8))

    config = comfy.supported_models.HunyuanVideo15_SR_Distilled(
        {**comfy.supported_models.HunyuanVideo15_SR_Distilled.unet_config, "disable_unet_model_creation": True})
    model = config.get_model({})
    noise = torch.zeros_like(latent)  # the sampler's noise: only its shape is read by the concat

    def model_conds(conditioning):
        conds = {"positive": comfy.sampler_helpers.convert_cond(conditioning)}
        conds = comfy.samplers.process_conds(model, noise, conds, "cpu", latent_image=latent, seed=seed)
        return conds["positive"][0]["model_conds"]

    out = {"scale_factor": torch.tensor(comfy.latent_formats.HunyuanVideo15().scale_factor, dtype=torch.float64)}
    plain = [[text, {"pooled_output": None}]]  # as its text encode node hands it over
    for index, augmentation in enumerate(tensors["augmentations"].tolist()):
        positive = HunyuanVideo15SuperResolution.execute(
            plain, plain, {"samples": latent}, augmentation, vae=vae, start_image=tensors["start_image"],
            clip_vision_output=vision).args[0]
        if index == 0:
            out["node_concat"] = positive[0][1]["concat_latent_image"].clone()
            out["vae_pixels_shape"] = torch.tensor(vae.pixels_shape)
        conds = model_conds(positive)
        out[f"early_{index}"] = conds["c_concat"].cond
        out["disable_time_r"] = torch.tensor(bool(conds["disable_time_r"].cond))
        out["has_clip_fea"] = torch.tensor("clip_fea" in conds)
    late = model_conds(plain)
    out["late"] = late["c_concat"].cond
    out["late_has_clip_fea"] = torch.tensor("clip_fea" in late)
    save_file({name: value.contiguous() for name, value in out.items()}, output)


if __name__ == "__main__":
    with torch.no_grad():
        main()
