"""Run under torchrun by tests/test_parallel.py: parallel against one-process results, in the same processes.

    torchrun --standalone --nproc_per_node 2 tests/parallel_harness.py CHECK RESULT.json WORKDIR

Each check computes the one-process result first (on the first rank, no
collectives), then the same with the work split over every rank, and the
first rank writes the largest differences to RESULT.json. CHECK is
"transformer" (one forward pass per case), "stages" (sampling through the
loaders, with fp8 storage, a cache and a LoRA, and the command line's
renderer) or "compile" (regional compilation of a split model).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hunyuan_i2v.parallel import ranks as process_ranks  # noqa: E402
from hunyuan_i2v.shared import sequence_parallel as sequence  # noqa: E402


def tiny_13b(variant: str):
    from hunyuan_i2v.hunyuan_video_13b.demo import build_components

    return build_components(variant, seed=2)["transformer"].float()


def tiny_15():
    from hunyuan_i2v.hunyuan_video_15.attention import use_key_mask_attention
    from hunyuan_i2v.hunyuan_video_15.demo import build_components

    model = build_components(seed=2)["transformer"].float()
    use_key_mask_attention(model)
    return model


def inputs_13b(model, frames: int, height: int, width: int, text_len: int, real_text: int):
    generator = torch.Generator().manual_seed(frames * 100 + height)
    config = model.config
    kwargs = {
        "hidden_states": torch.randn(1, config.in_channels, frames, height, width, generator=generator),
        "timestep": torch.tensor([700.0]),
        "encoder_hidden_states": torch.randn(1, text_len, config.text_embed_dim, generator=generator),
        "encoder_attention_mask": (torch.arange(text_len) < real_text).long()[None],
        "pooled_projections": torch.randn(1, config.pooled_projection_dim, generator=generator),
        "return_dict": False,
    }
    if config.guidance_embeds:
        kwargs["guidance"] = torch.tensor([6000.0])
    return kwargs


def inputs_15(model, frames: int, height: int, width: int):
    generator = torch.Generator().manual_seed(7)
    c = model.config
    return {
        "hidden_states": torch.randn(1, c.in_channels, frames, height, width, generator=generator),
        "timestep": torch.tensor([700.0]),
        "encoder_hidden_states": torch.randn(1, 9, c.text_embed_dim, generator=generator),
        "encoder_attention_mask": torch.tensor([[1] * 6 + [0] * 3]),
        "encoder_hidden_states_2": torch.randn(1, 5, c.text_embed_2_dim, generator=generator),
        "encoder_attention_mask_2": torch.tensor([[1, 1, 1, 0, 0]]),
        "image_embeds": torch.randn(1, 4, c.image_embed_dim, generator=generator),
        "return_dict": False,
    }


def check_transformer(ranks) -> dict:
    # (name, model builder, inputs): token counts after 2x2 patches (13 B) or 1x1 (1.5)
    cases = [
        # one latent frame: the first frame's 15 tokens span both shards (8 + 7)
        ("v2 first frame spanning shards", lambda: tiny_13b("token_replace"), lambda m: inputs_13b(m, 1, 6, 10, 7, 7)),
        # 3 frames of 15 tokens: 45, odd; the first frame lies in the first shard only
        ("v2 odd token count", lambda: tiny_13b("token_replace"), lambda m: inputs_13b(m, 3, 6, 10, 7, 4)),
        ("v1 padded text", lambda: tiny_13b("latent_concat"), lambda m: inputs_13b(m, 2, 6, 8, 9, 3)),
        ("v1 odd token count", lambda: tiny_13b("latent_concat"), lambda m: inputs_13b(m, 3, 6, 10, 5, 5)),
        ("1.5 odd token count", tiny_15, lambda m: inputs_15(m, 3, 5, 3)),
        ("1.5 even", tiny_15, lambda m: inputs_15(m, 2, 4, 4)),
    ]
    result = {}
    with torch.no_grad():
        for name, build, make_inputs in cases:
            model = build().eval()
            kwargs = make_inputs(model)
            alone = model(**kwargs)[0]
            sequence.enable(model, ranks.rank, ranks.world)
            split = model(**kwargs)[0]
            again = model(**kwargs)[0]  # hooks keep no state from the previous pass
            result[name] = max((split - alone).abs().max().item(), (again - alone).abs().max().item())
    return result


def check_stages(ranks, workdir: Path) -> dict:
    from hunyuan_i2v import families, loading, stages
    from hunyuan_i2v.cli import checks, jobs, options
    from hunyuan_i2v.cli.progress import Progress
    from hunyuan_i2v.cli.render import Renderer
    from hunyuan_i2v.shared.sampling import SamplingSettings

    result = {}
    own = workdir / f"rank{ranks.rank}"
    own.mkdir(parents=True, exist_ok=True)
    cases = [
        ("13b v2 sampling", "hunyuan_video_13b", {"variant": "token_replace"}, SamplingSettings(seed=5, steps=3, num_frames=9, cfg_scale=1.0)),
        ("13b v1 sampling with cfg", "hunyuan_video_13b", {"variant": "latent_concat"}, SamplingSettings(seed=5, steps=3, num_frames=5, cfg_scale=2.5)),
        ("1.5 sampling with cfg", "hunyuan_video_15", {}, SamplingSettings(seed=5, steps=3, num_frames=9)),
    ]
    for name, family, demo_args, settings in cases:
        target = own / name.replace(" ", "_")
        if family == "hunyuan_video_13b":
            from hunyuan_i2v.hunyuan_video_13b import demo

            folder = demo.write_diffusers_folder(target, demo_args["variant"])
        else:
            folder = families.family(family).write_demo_folder(target)
        alone = None

        def encode_and_sample_alone():
            nonlocal alone
            single = loading.load_model(folder, "fp32")
            vae = loading.load_vae(folder, "fp32")
            encoders = loading.load_text_encoders(loading.TextEncoderSources(folder=folder), "fp32")
            image = torch.rand(1, 64, 80, 3, generator=torch.Generator().manual_seed(1))
            # 80x48: 15 image tokens per latent frame, an odd count, for both families
            cond = stages.run_encode(encoders, vae, image, "a cat walks", "blurry", width=80, height=48)
            alone = stages.run_sample(single, cond, settings).latent["samples"]
            return cond

        cond = process_ranks.share(ranks, encode_and_sample_alone)
        split_model = loading.load_model(folder, "fp32", ranks=ranks)
        split = stages.run_sample(split_model, cond, settings).latent["samples"]
        if ranks.is_first:
            result[name] = (split - alone).abs().max().item()

    result.update(check_options(ranks, own))

    from hunyuan_i2v.errors import UserInputError

    def refuse():
        raise UserInputError("Give the image at 80x48.")

    try:
        process_ranks.share(ranks, refuse)
    except UserInputError as exc:
        result["error on the first process"] = f"{type(exc).__name__}: {exc}"

    # The command line's renderer: every rank samples, the first encodes and decodes.
    parser = options.build_parser()
    argv = ["generate", "--demo", "--output", str(workdir / "unused.mp4"), "--dtype", "fp32", "--frames", "9",
            "--steps", "3"]
    args = parser.parse_args(argv)
    checks.apply_demo_defaults(args, options.given_options(parser, "generate", argv))
    plan = checks.plan_models(args)
    job = jobs.from_args(args)
    frames_alone = None
    if ranks.is_first:
        args.ranks = None
        renderer = Renderer(plan, args, own / "cli_alone", Progress(bars=False, speak=False))
        renderer.load()
        frames_alone = renderer.frames(job)
    args.ranks = ranks
    renderer = Renderer(plan, args, own / "cli_split", Progress(bars=False, speak=False))
    renderer.load()
    frames_split = renderer.frames(job)
    if ranks.is_first:
        result["command line frames"] = (frames_split - frames_alone).abs().max().item()
    else:
        result["other ranks return no frames"] = frames_split is None
    return result


def write_lora(path: Path, hidden: int, out: int) -> Path:
    """A LoRA in original names on the fused q|k|v of block 0 and on the final projection (proj_out)."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=generator) * 0.1

    save_file({
        "diffusion_model.double_blocks.0.img_attn_qkv.lora_A.weight": rand(2, hidden),
        "diffusion_model.double_blocks.0.img_attn_qkv.lora_B.weight": rand(3 * hidden, 2),
        "diffusion_model.final_layer.linear.lora_A.weight": rand(2, hidden),
        "diffusion_model.final_layer.linear.lora_B.weight": rand(out, 2),
    }, str(path))
    return path


def check_options(ranks, own: Path) -> dict:
    """fp8 storage, the TaylorSeer cache and a LoRA that wraps the output projection, split as on one GPU."""
    from hunyuan_i2v import loading, stages
    from hunyuan_i2v.hunyuan_video_15 import demo
    from hunyuan_i2v.shared.sampling import SamplingSettings

    folder = demo.write_diffusers_folder(own / "options15", seed=3)
    settings = SamplingSettings(seed=4, steps=6, num_frames=9, cfg_scale=1.0)
    alone = {}

    def prepare():
        model = loading.load_model(folder, "fp32", fp8_storage=True)
        config = model.model.config
        lora = write_lora(own / "lora.safetensors", config.num_attention_heads * config.attention_head_dim,
                          config.out_channels)
        vae = loading.load_vae(folder, "fp32")
        encoders = loading.load_text_encoders(loading.TextEncoderSources(folder=folder), "fp32")
        image = torch.rand(1, 48, 80, 3, generator=torch.Generator().manual_seed(2))
        cond = stages.run_encode(encoders, vae, image, "a dog", "", width=80, height=48)
        alone["plain"] = stages.run_sample(model, cond, settings).latent["samples"]
        alone["lora"] = stages.run_sample(loading.with_lora(model, lora, 1.0), cond, settings, cache="taylorseer")
        return cond

    cond = process_ranks.share(ranks, prepare)
    lora = own / "lora.safetensors"
    split = loading.load_model(folder, "fp32", fp8_storage=True, ranks=ranks)
    if not ranks.is_first:
        config = split.model.config
        write_lora(lora, config.num_attention_heads * config.attention_head_dim, config.out_channels)
    plain = stages.run_sample(split, cond, settings).latent["samples"]
    with_lora = stages.run_sample(loading.with_lora(split, lora, 1.0), cond, settings, cache="taylorseer")
    if not ranks.is_first:
        return {}
    return {
        "fp8 storage": (plain - alone["plain"]).abs().max().item(),
        "fp8 + LoRA on proj_out + taylorseer": (with_lora.latent["samples"] - alone["lora"].latent["samples"]).abs().max().item(),
        "LoRA changes the video": (with_lora.latent["samples"] - plain).abs().max().item(),
    }


def check_compile(ranks, workdir: Path) -> dict:
    """Regional compilation (torch.compile per block) of a split model: the hooks and the all-to-all compile."""
    from hunyuan_i2v import loading, stages
    from hunyuan_i2v.hunyuan_video_15 import demo
    from hunyuan_i2v.shared.sampling import SamplingSettings

    folder = demo.write_diffusers_folder(workdir / f"rank{ranks.rank}" / "compile15", seed=4)
    settings = SamplingSettings(seed=2, steps=2, num_frames=5, cfg_scale=1.0)
    alone = {}

    def prepare():
        vae = loading.load_vae(folder, "fp32")
        encoders = loading.load_text_encoders(loading.TextEncoderSources(folder=folder), "fp32")
        image = torch.rand(1, 48, 80, 3, generator=torch.Generator().manual_seed(3))
        cond = stages.run_encode(encoders, vae, image, "a dog", "", width=80, height=48)
        alone["latent"] = stages.run_sample(loading.load_model(folder, "fp32"), cond, settings).latent["samples"]
        return cond

    cond = process_ranks.share(ranks, prepare)
    model = loading.load_model(folder, "fp32", compile_blocks=True, ranks=ranks)
    split = stages.run_sample(model, cond, settings).latent["samples"]
    return {"compiled blocks": (split - alone["latent"]).abs().max().item()} if ranks.is_first else {}


CHECKS = {"transformer": lambda ranks, workdir: check_transformer(ranks), "stages": check_stages,
          "compile": check_compile}


def main() -> int:
    check, out, workdir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    ranks = process_ranks.join("cpu")
    try:
        result = CHECKS[check](ranks, workdir)
        others = [None] * ranks.world
        torch.distributed.all_gather_object(others, result)
        if ranks.is_first:
            merged = dict(result)
            for rank, theirs in enumerate(others[1:], 1):
                merged.update({f"rank {rank}: {k}": v for k, v in theirs.items()})
            out.write_text(json.dumps(merged, indent=1))
    finally:
        process_ranks.leave()
    return 0


if __name__ == "__main__":
    sys.exit(main())
