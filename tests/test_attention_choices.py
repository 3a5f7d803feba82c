"""Every attention choice works for both families or is refused before any weights load, in a sentence.

Which kernels exist depends on the machine; their availability is simulated where this CPU lacks them, and the
ones this CPU has run end to end.
"""

import sys

import pytest
import torch

from hyv_pack.hunyuan_i2v import families, loading
from hyv_pack.hunyuan_i2v.errors import UserInputError
from hyv_pack.hunyuan_i2v.shared import acceleration, kernels

FAMILIES = ["hunyuan_video_13b", "hunyuan_video_15"]
# What runs for each choice once its package and device allow it: both families mask their padded prompt.
EXPECTED = {
    "native (PyTorch SDPA)": "native",
    "sdpa flash": "_native_efficient",
    "sdpa efficient": "_native_efficient",
    "sdpa cudnn": "_native_cudnn",
    "flash-attn 2": "flash_varlen",
    "flash-attn 2 varlen": "flash_varlen",
    "flash-attn 3": "_flash_varlen_3",
    "flash-attn 3 varlen": "_flash_varlen_3",
    "sageattention": "sage_varlen",
    "sageattention varlen": "sage_varlen",
}
# diffusers' kernels that refuse an attention mask outright
MASK_REFUSING = {"flash", "_flash_3", "sage", "_native_flash"}


@pytest.fixture
def every_kernel_available(monkeypatch):
    """A machine with every package installed and a GPU that runs them all."""
    import diffusers.models.attention_dispatch as dispatch

    monkeypatch.setattr(dispatch, "_check_attention_backend_requirements", lambda backend: None)
    tried = []

    def attention_failure(backend, device, dtype):
        tried.append(backend)
        return None

    monkeypatch.setattr(kernels, "attention_failure", attention_failure)
    monkeypatch.setattr(kernels, "fused_sdpa_available", lambda device, dtype: True)
    return tried


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("label", list(EXPECTED))
def test_each_choice_runs_a_kernel_that_takes_the_mask(every_kernel_available, label, family):
    backend, notes = acceleration.usable_attention_backend(label, family, torch.device("cuda"), torch.bfloat16)
    assert backend == EXPECTED[label] and backend not in MASK_REFUSING
    assert every_kernel_available == [backend]  # the kernel that will run is the one tried
    assert notes[-1] == f"Attention kernel: {next(k for k, v in acceleration.ATTENTION_BACKENDS.items() if v == backend)}."


def test_a_gpu_without_fused_bf16_attention_is_told_at_load(every_kernel_available, monkeypatch):
    """Pre-Ampere GPUs: PyTorch falls back to its math kernel for masked bf16 attention; the info says so."""
    monkeypatch.setattr(kernels, "fused_sdpa_available", lambda device, dtype: False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    _, notes = acceleration.usable_attention_backend("native (PyTorch SDPA)", "hunyuan_video_15",
                                                     torch.device("cuda"), torch.bfloat16)
    assert any("compute capability 7.5" in n and "fp16" in n for n in notes)


def test_every_offered_choice_is_covered():
    assert set(acceleration.ATTENTION_BACKENDS) == set(EXPECTED)


@pytest.mark.parametrize("family", FAMILIES)
def test_xformers_is_refused_with_what_to_pick(family):
    with pytest.raises(UserInputError, match="sdpa efficient"):
        acceleration.usable_attention_backend("xformers", family, torch.device("cpu"), torch.float32)


@pytest.mark.parametrize("label", ["sdpa flash", "sdpa efficient", "sdpa cudnn"])
@pytest.mark.parametrize("family", FAMILIES)
def test_fused_sdpa_kernels_this_cpu_lacks_are_refused_before_loading(folders, monkeypatch, label, family):
    """On this CPU PyTorch has no memory-efficient or cuDNN kernel: refused up front, not at the first step."""
    fam = families.family(family)
    monkeypatch.setattr(fam, "load_transformer", lambda *a, **k: pytest.fail("weights loaded before the refusal"))
    with pytest.raises(UserInputError, match=r"cannot run on cpu.*Pick 'native \(PyTorch SDPA\)'"):
        loading.load_model(folders[family], "bf16", attention=label, device=torch.device("cpu"))


@pytest.mark.parametrize("family", FAMILIES)
def test_flash_attn_on_a_cpu_is_refused_in_a_sentence(folders, family):
    if not _has("flash_attn"):
        with pytest.raises(UserInputError, match="not usable here.*native"):
            loading.load_model(folders[family], "bf16", attention="flash-attn 2", device=torch.device("cpu"))


@pytest.mark.parametrize("family", FAMILIES)
def test_varlen_kernel_is_set_on_the_model_and_named_in_its_info(folders, every_kernel_available, family):
    loaded = loading.load_model(folders[family], "bf16", attention="flash-attn 2", device=torch.device("cpu"))
    backends = {getattr(m.processor, "_attention_backend", None) for m in loaded.model.modules()
                if hasattr(m, "processor") and hasattr(m.processor, "_attention_backend")}
    assert {str(b.value if hasattr(b, "value") else b) for b in backends} == {"flash_varlen"}
    assert "Attention kernel: flash-attn 2 varlen." in loaded.notes


@pytest.mark.parametrize("family", FAMILIES)
def test_native_runs_end_to_end_on_the_cpu_in_bf16(folders, family):
    """The kernel this CPU has, through the real probe (not simulated), with the family's real mask."""
    from diffusers.models.attention_dispatch import AttentionBackendName

    backend, notes = acceleration.usable_attention_backend("native (PyTorch SDPA)", family, torch.device("cpu"),
                                                           torch.bfloat16)
    assert backend == "native" and kernels.attention_failure("native", torch.device("cpu"), torch.bfloat16) is None
    assert kernels.attention_failure("_native_efficient", torch.device("cpu"), torch.bfloat16)  # really absent here
    loaded = loading.load_model(folders[family], "bf16", device=torch.device("cpu"))
    assert "Attention kernel: native (PyTorch SDPA)." in loaded.notes
    assert AttentionBackendName.NATIVE in {getattr(m.processor, "_attention_backend", None)
                                           for m in loaded.model.modules() if hasattr(m, "processor")}


def test_the_probe_finds_a_kernel_that_refuses_the_mask():
    assert "mask" in kernels.attention_failure("_native_flash", torch.device("cpu"), torch.bfloat16)


# ---------------------------------------------------------------- other load-time refusals

@pytest.mark.parametrize("family", FAMILIES)
def test_fp8_storage_on_apple_mps_is_refused_before_loading(folders, monkeypatch, family):
    monkeypatch.setattr(families.family(family), "load_transformer", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(UserInputError, match="fp8 storage does not work on Apple MPS"):
        loading.load_model(folders[family], "bf16", fp8_storage=True, device=torch.device("mps"))


def test_compile_without_triton_is_refused_before_loading(folders, monkeypatch):
    import torch.utils._triton as triton_check

    monkeypatch.setattr(triton_check, "has_triton", lambda: False)
    monkeypatch.setattr(families.family("hunyuan_video_15"), "load_transformer", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(UserInputError, match="compile_blocks needs Triton"):
        loading.load_model(folders["hunyuan_video_15"], "bf16", compile_blocks=True, device=torch.device("cuda"))


def test_several_gpus_on_windows_are_refused_before_workers_start(folders, monkeypatch):
    from hyv_pack.hunyuan_i2v.parallel import pool

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(pool.WorkerPool, "start", lambda *a, **k: pytest.fail("workers started"))
    with pytest.raises(UserInputError, match="NCCL.*Windows"):
        pool.load_model_on_gpus(2, folders["hunyuan_video_15"], device_type="cuda")


def test_cli_checks_refuse_before_loading(monkeypatch):
    from types import SimpleNamespace

    from hyv_pack.hunyuan_i2v.cli import checks

    args = SimpleNamespace(fp8=False, text_encoder_fp8=False, compile=False, dtype="bf16", attention="sdpa flash")
    with pytest.raises(UserInputError, match="cannot run on cpu"):
        checks.check_model_options(args, "hunyuan_video_13b", torch.device("cpu"))


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def folders(models_root, models15_root):
    return {"hunyuan_video_13b": models_root / "diffusers" / "tiny_v2",
            "hunyuan_video_15": models15_root / "diffusers" / "tiny15"}
