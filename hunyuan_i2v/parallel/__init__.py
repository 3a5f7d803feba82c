"""Several GPUs for one video: sequence parallelism (diffusers' context parallelism, Ulysses).

(The plan and hooks that split either transformer's image tokens are model-level: shared/sequence_parallel.py.)
``ranks``: joining the process group torchrun or the worker pool describes.
``pool``: the worker processes the ComfyUI loader starts, one per GPU.
"""
