"""Run Tencent's own HunyuanVideo-1.5 SR pipeline on tiny weights and record every tensor of the SR stage.

Opt-in reference for the pack's SR stage: set ``TENCENT_HV15_PATH`` to a work tree of
github.com/Tencent-Hunyuan/HunyuanVideo-1.5 (kept outside the repository: its licence does not let the pack carry
it). Nothing here runs, and nothing is imported from that tree, when the variable is unset (``tencent_path()`` is
None and the tests skip).

Tencent's pipeline is built the way its ``create_sr_pipeline`` builds it (hyvideo/pipelines/
hunyuan_video_pipeline.py), from a folder in Tencent's release layout (tests/tencent_sr_release.py writes one), with
three shims for a CPU without torchvision: a torchvision.transforms stand-in with torchvision's PIL semantics (used
once: the start image's resize/crop/normalise before the VAE), a ``ParallelDims.build_mesh`` that builds no CUDA
mesh, and ``execution_device="cpu"``. Everything runs in float32 (``target_dtype`` and every model), so a float32
run of the pack can be held to tight tolerances; the dtypes of a GPU run are listed in /work/notes/tencent_sr_facts.md.

``run_tencent_sr`` returns a dict (keys in RESULT_KEYS) captured by wrapping the pipeline's own methods and hooking
the transformer, so the pipeline's code path is unchanged.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np
import torch

from tencent_sr_release import SR_RELEASES, write_tiny_tencent_sr_release  # noqa: F401  (re-exported)

ENV = "TENCENT_HV15_PATH"
RESULT_KEYS = (
    "width", "height", "timesteps", "sigmas", "initial_noise", "image_pixels", "image_latent", "cond_latents",
    "lq_input", "lq_resized", "lq_upsampled", "lq_noise", "lq_augmented", "prompt_embeds", "prompt_mask",
    "byt5_text_states", "byt5_text_mask", "vision_states", "steps", "step_latents", "final_latent", "frames",
)


def tencent_path() -> Path | None:
    """The Tencent work tree named by TENCENT_HV15_PATH, or None when unset; a wrong path is an error."""
    value = os.environ.get(ENV)
    if not value:
        return None
    path = Path(value)
    if not (path / "hyvideo" / "pipelines" / "hunyuan_video_sr_pipeline.py").is_file():
        raise FileNotFoundError(f"{ENV}={value} is not a HunyuanVideo-1.5 work tree (no hyvideo/pipelines/"
                                "hunyuan_video_sr_pipeline.py); point it at a checkout of "
                                "Tencent-Hunyuan/HunyuanVideo-1.5")
    return path


# ---------------------------------------------------------------- shims
class _Compose:
    def __init__(self, steps):
        self.steps = steps

    def __call__(self, value):
        for step in self.steps:
            value = step(value)
        return value


class _Resize:
    """torchvision Resize((h, w), interpolation) on a PIL image: PIL's own resize with that filter."""

    def __init__(self, size, interpolation):
        self.size, self.interpolation = size, interpolation

    def __call__(self, image):
        height, width = self.size
        return image.resize((width, height), self.interpolation)


class _CenterCrop:
    """torchvision CenterCrop((h, w)) on a PIL image: offsets int(round((size - crop) / 2))."""

    def __init__(self, size):
        self.size = size

    def __call__(self, image):
        height, width = self.size
        top = int(round((image.height - height) / 2.0))
        left = int(round((image.width - width) / 2.0))
        return image.crop((left, top, left + width, top + height))


def _to_tensor(image):
    """torchvision ToTensor on an RGB PIL image: CHW float in [0, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(255)


class _Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)

    def __call__(self, tensor):
        return (tensor - self.mean) / self.std


def _torchvision_stand_in() -> dict[str, types.ModuleType]:
    from PIL import Image

    transforms = types.ModuleType("torchvision.transforms")
    transforms.Compose, transforms.Resize, transforms.CenterCrop = _Compose, _Resize, _CenterCrop
    transforms.ToTensor = lambda: _to_tensor
    transforms.Normalize = _Normalize
    transforms.InterpolationMode = types.SimpleNamespace(
        LANCZOS=Image.LANCZOS, BICUBIC=Image.BICUBIC, BILINEAR=Image.BILINEAR, NEAREST=Image.NEAREST)
    package = types.ModuleType("torchvision")
    package.transforms = transforms
    return {"torchvision": package, "torchvision.transforms": transforms}


def _build_mesh_without_devices(self, device_type):
    """One process, no sequence parallelism: what the real build_mesh gives a single GPU, without a CUDA mesh."""
    self.world_mesh = self.fsdp_mesh = None
    self.sp_rank, self.sp_group = 0, None
    return None


def import_tencent(path: Path | None = None) -> types.SimpleNamespace:
    """Import Tencent's SR pipeline from ``path`` (default: TENCENT_HV15_PATH) with the CPU shims in place."""
    path = path or tencent_path()
    if path is None:
        raise RuntimeError(f"set {ENV} to a HunyuanVideo-1.5 work tree to run Tencent's reference")
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    import transformers  # noqa: F401  (decides torchvision's absence before the stand-in exists)

    stand_in = _torchvision_stand_in()
    saved = {name: sys.modules.get(name) for name in stand_in}
    sys.modules.update(stand_in)
    try:
        from hyvideo.commons import SR_PIPELINE_CONFIGS, parallel_states
        from hyvideo.models.autoencoders.hunyuanvideo_15_vae import AutoencoderKLConv3D
        from hyvideo.pipelines.hunyuan_video_pipeline import HunyuanVideo_1_5_Pipeline
        from hyvideo.pipelines.hunyuan_video_sr_pipeline import HunyuanVideo_1_5_SR_Pipeline
    finally:  # only Tencent's module keeps the stand-in; transformers and diffusers go on seeing no torchvision
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    parallel_states.ParallelDims.build_mesh = _build_mesh_without_devices
    return types.SimpleNamespace(
        SR_PIPELINE_CONFIGS=SR_PIPELINE_CONFIGS, AutoencoderKLConv3D=AutoencoderKLConv3D,
        Pipeline=HunyuanVideo_1_5_Pipeline, SRPipeline=HunyuanVideo_1_5_SR_Pipeline,
    )


def _check_loaded(model, folder: Path) -> None:
    """Tencent's from_pretrained fills missing weights at random with a warning: a tiny file must match exactly."""
    from safetensors.torch import load_file

    stored = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    expected = set(model.state_dict())
    if set(stored) != expected:
        raise KeyError(f"{folder}: missing {sorted(expected - set(stored))[:5]}, "
                       f"unexpected {sorted(set(stored) - expected)[:5]}")
    for key, value in model.state_dict().items():
        if not torch.equal(value.float(), stored[key].float()):
            raise ValueError(f"{folder}: {key} did not load")


def load_tencent_sr_pipeline(model_dir: str | Path, sr_release: str = "720p", vae_tile_px: int = 256,
                             vae_tile_overlap: float = 0.125):
    """Tencent's HunyuanVideo_1_5_SR_Pipeline over ``model_dir``, as ``create_sr_pipeline`` builds it, in float32."""
    if sr_release not in SR_RELEASES:
        raise ValueError(f"sr_release must be one of {SR_RELEASES}, not {sr_release!r}")
    tencent = import_tencent()
    model_dir = Path(model_dir)
    version = f"{sr_release}_sr_distilled"
    base = tencent.Pipeline
    transformer, upsampler = base.load_sr_transformer_upsampler(
        str(model_dir), version, transformer_dtype=torch.float32, device="cpu")
    _check_loaded(transformer, model_dir / "transformer" / version)
    _check_loaded(upsampler, model_dir / "upsampler" / version)
    vae = tencent.AutoencoderKLConv3D.from_pretrained(str(model_dir / "vae"), torch_dtype=torch.float32)
    _check_loaded(vae, model_dir / "vae")
    # the setting create_pipeline picks on a GPU with more than 21 GB (get_vae_inference_config)
    vae.set_tile_sample_min_size(vae_tile_px, vae_tile_overlap)
    byt5, prompt_format = base._load_byt5(str(model_dir), True, 256, device="cpu")
    text_encoder, _ = base._load_text_encoders(str(model_dir), device="cpu")
    vision_encoder = base._load_vision_encoder(str(model_dir), device="cpu")
    for module in (text_encoder.model, vision_encoder.model, byt5["byt5_model"]):
        module.float()  # Tencent loads these in fp16; float32 keeps the reference exact on a CPU
    text_encoder.model.eval(), vision_encoder.model.eval(), byt5["byt5_model"].eval()
    vision_encoder.dtype = torch.float32
    vision = vision_encoder.model.config
    pipe = tencent.SRPipeline(
        vae=vae, text_encoder=text_encoder, transformer=transformer.eval(),
        scheduler=base._create_scheduler(tencent.SR_PIPELINE_CONFIGS[version]["flow_shift"]),
        upsampler=upsampler.eval(), text_encoder_2=None, progress_bar_config={"disable": True},
        glyph_byT5_v2=True, byt5_model=byt5["byt5_model"], byt5_tokenizer=byt5["byt5_tokenizer"],
        byt5_max_length=byt5["byt5_max_length"], prompt_format=prompt_format, execution_device="cpu",
        vision_encoder=vision_encoder, enable_offloading=False,
        # only read for text-to-video (zeros of this shape); the real SigLIP gives 729 x 1152
        vision_num_semantic_tokens=(vision.image_size // vision.patch_size) ** 2, vision_states_dim=vision.hidden_size,
        **tencent.SR_PIPELINE_CONFIGS[version],
    )
    pipe.target_dtype = pipe.vae_dtype = torch.float32
    return pipe


def _wrap(obj, name: str, after):
    """Replace bound method ``name`` on ``obj`` by one that calls it and hands (args, kwargs, result) to ``after``."""
    original = getattr(obj, name)

    def wrapped(*args, **kwargs):
        result = original(*args, **kwargs)
        replaced = after(args, kwargs, result)
        return result if replaced is None else replaced

    setattr(obj, name, wrapped)


def _record(pipe, out: dict) -> list:
    """Install the wrappers and hooks that fill ``out``; returns the hook handles to remove."""
    clone = lambda t: None if t is None else t.detach().clone()  # noqa: E731

    _wrap(pipe, "prepare_latents", lambda a, k, r: out.__setitem__("initial_noise", clone(r)))
    _wrap(pipe, "encode_prompt", lambda a, k, r: out.update(prompt_embeds=clone(r[0]), prompt_mask=clone(r[2])))
    _wrap(pipe, "_prepare_byt5_embeddings", lambda a, k, r: out.update(
        byt5_text_states=clone(r.get("byt5_text_states")), byt5_text_mask=clone(r.get("byt5_text_mask"))))
    _wrap(pipe, "_prepare_vision_states", lambda a, k, r: out.__setitem__("vision_states", clone(r)))
    _wrap(pipe, "get_image_condition_latents", lambda a, k, r: out.__setitem__("image_latent", clone(r)))
    _wrap(pipe, "_prepare_cond_latents", lambda a, k, r: out.__setitem__("cond_latents", clone(r)))

    encode = pipe.vae.encode

    def encode_recording(pixels, *args, **kwargs):
        out["image_pixels"] = clone(pixels)
        return encode(pixels, *args, **kwargs)

    pipe.vae.encode = encode_recording

    add_noise = pipe.add_noise_to_lq

    def add_noise_recording(lq, strength=0.7):
        state = torch.get_rng_state()
        result = add_noise(lq, strength)
        after = torch.get_rng_state()
        torch.set_rng_state(state)  # replay the draw to keep the noise itself, then leave the RNG as Tencent did
        out["lq_noise"] = torch.randn_like(lq)
        torch.set_rng_state(after)
        out.update(lq_upsampled=clone(lq), lq_augmented=clone(result))
        return result

    pipe.add_noise_to_lq = add_noise_recording

    def create_scheduler(flow_shift):
        scheduler = type(pipe)._create_scheduler(flow_shift)
        step = scheduler.step

        def step_recording(*args, **kwargs):
            result = step(*args, **kwargs)
            out["step_latents"].append(clone(result[0]))
            return result

        scheduler.step = step_recording
        out["scheduler"] = scheduler
        return scheduler

    pipe._create_scheduler = create_scheduler

    def transformer_inputs(module, args, kwargs):
        hidden, timestep, text_states, _, text_mask = args[:5]
        extra = kwargs.get("extra_kwargs") or {}
        out["steps"].append({
            "hidden_states": clone(hidden), "timestep": clone(timestep), "timestep_r": clone(kwargs["timestep_r"]),
            "text_states": clone(text_states), "text_mask": clone(text_mask),
            "vision_states": clone(kwargs["vision_states"]), "mask_type": kwargs["mask_type"],
            "guidance": clone(kwargs["guidance"]), "byt5_text_states": clone(extra.get("byt5_text_states")),
            "byt5_text_mask": clone(extra.get("byt5_text_mask")),
        })

    def transformer_output(module, args, kwargs, result):
        out["steps"][-1]["velocity"] = clone(result[0])

    def upsampler_io(module, args, result):
        out["lq_resized"] = clone(args[0])

    return [
        pipe.transformer.register_forward_pre_hook(transformer_inputs, with_kwargs=True),
        pipe.transformer.register_forward_hook(transformer_output, with_kwargs=True),
        pipe.upsampler.register_forward_hook(upsampler_io),
    ]


def run_tencent_sr(model_dir: str | Path, lowres_latent: torch.Tensor, image=None, prompt: str = "",
                   seed: int = 0, sr_release: str = "720p", steps: int | None = None, decode: bool = True,
                   video_length: int | None = None, pipe=None) -> dict:
    """Run Tencent's SR stage once and return everything it computed (see RESULT_KEYS and the facts note).

    ``lowres_latent``: the base stage's final latent, (B, 32, T, h, w) in the VAE's scaled space, h*16 x w*16 a
    low-resolution bucket of the release (480p family for 720p SR, 720p family for 1080p SR). ``image``: the start
    image as a PIL image (None: text-to-video). Seeding: ``torch.manual_seed(seed)`` right before the call, and
    Tencent's own ``Generator("cpu").manual_seed(seed)`` for the initial noise; the low-resolution noise is the
    first draw of the global RNG after that (it is also returned, as ``lq_noise``). ``steps`` None uses the
    release's default. ``pipe`` reuses a pipeline from ``load_tencent_sr_pipeline``.
    """
    pipe = pipe or load_tencent_sr_pipeline(model_dir, sr_release)
    lowres_latent = lowres_latent.detach().float()
    if video_length is None:
        video_length = (lowres_latent.shape[2] - 1) * 4 + 1
    out: dict = {"steps": [], "step_latents": [], "lq_input": lowres_latent.clone()}
    handles = _record(pipe, out)
    try:
        torch.manual_seed(seed)
        frames = pipe(prompt=prompt, video_length=video_length, num_inference_steps=steps, seed=seed,
                      reference_image=image, lq_latents=lowres_latent, negative_prompt="",
                      output_type="pt" if decode else "latent", enable_vae_tile_parallelism=False).videos
    finally:
        for handle in handles:
            handle.remove()
        for name in ("prepare_latents", "encode_prompt", "_prepare_byt5_embeddings", "_prepare_vision_states",
                     "get_image_condition_latents", "_prepare_cond_latents", "add_noise_to_lq", "_create_scheduler"):
            pipe.__dict__.pop(name, None)
        pipe.vae.__dict__.pop("encode", None)
    scheduler = out.pop("scheduler")
    latent = out["initial_noise"]
    out.update(
        timesteps=scheduler.timesteps.clone(), sigmas=scheduler.sigmas.clone(),
        final_latent=out["step_latents"][-1], frames=frames if decode else None,
        height=latent.shape[-2] * 16, width=latent.shape[-1] * 16,
    )
    for key in RESULT_KEYS:
        out.setdefault(key, None)
    return out
