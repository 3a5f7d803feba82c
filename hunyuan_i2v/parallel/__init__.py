"""The processes behind several GPUs for one video (sequence parallelism: diffusers' context parallelism, Ulysses).

``ranks``: joining the process group torchrun or the worker pool describes.
``pool``: the worker processes the ComfyUI loader starts, one per GPU (``pool.load_model_on_gpus``).
``worker``: one such process; ``messages``: what they tell each other, without pickle.
The plan and hooks that split either transformer's image tokens are model-level: shared/sequence_parallel.py.
"""
