"""One GPU's worker process of a parallel.pool.WorkerPool (``python -m hunyuan_i2v.parallel.worker``).

It joins the process group its environment describes, loads the transformer
when told to, samples its share of each video, and reports to the pool over
the connection the environment names. Only the first worker reports steps and
returns the latents (all workers end with the same ones).
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import replace
from multiprocessing.connection import Client

import torch

from .. import loading, stages
from ..shared.sampling import StepInfo
from . import messages, ranks as process_ranks


class Cancelled(Exception):
    """The pool asked to stop the job (Cancel in ComfyUI); every worker stops at the same step."""


class Worker:
    def __init__(self, connection, ranks: process_ranks.Ranks):
        self.connection, self.ranks = connection, ranks
        self.transformer = None
        self.cancel_seen = False

    def serve(self) -> None:
        handlers = {"load": self.load, "sample": self.sample}
        while True:
            try:
                message = messages.receive(self.connection)
            except (EOFError, OSError):
                return  # the pool's program has gone
            kind = message[0]
            if kind == "stop":
                return
            if kind not in handlers:
                continue  # a cancel that came after its job had ended
            self.cancel_seen = False
            try:
                reply = ("done", handlers[kind](message[1]))
            except Cancelled:
                reply = ("cancelled",)
            except Exception as exc:  # noqa: BLE001 - the pool raises it in the program that asked
                traceback.print_exc(file=sys.stderr)
                reply = ("error", type(exc).__name__, str(exc))
            messages.send(self.connection, reply)

    def load(self, args: dict):
        self.transformer = None  # the old weights go before the new ones come
        loaded = loading.load_model(**args, device=self.ranks.device, offload_device=torch.device("cpu"),
                                    ranks=self.ranks)
        if self.ranks.device.type == "cuda" and loaded.offload_mode == "model":
            if self.ranks.is_first:
                loaded.notes.append(
                    "Offload mode 'model' on several GPUs: GPU 0, which ComfyUI's own models share, gets the "
                    "weights only while sampling; the other GPUs keep theirs (each worker has its GPU to itself), "
                    "which spares a copy of the weights in CPU memory per GPU."
                )
            else:
                loaded.model.to(self.ranks.device)
                loaded.offload_mode = "none"
        self.transformer = loaded
        if not self.ranks.is_first:
            return None
        return {
            "transformer": replace(loaded, model=None),
            "model_class": type(loaded.model).__name__,
            "config": dict(loaded.model.config),
        }

    def sample(self, job: dict):
        if self.transformer is None:
            raise RuntimeError("sample before load")
        transformer = replace(self.transformer, loras=tuple(job["loras"]))
        device = self.ranks.device
        free = int(torch.cuda.mem_get_info(device)[0]) if device.type == "cuda" else None

        def on_step(info: StepInfo):
            process_ranks.injected_failure(self.ranks.rank, info.index)
            if self.ranks.is_first:
                denoised = info.denoised if job["previews"] else None
                messages.send(self.connection, ("step", StepInfo(info.index, info.total, None, denoised)))

        result = stages.run_sample(
            transformer, job["cond"], job["requested"], job["cache"], job["cache_threshold"], device,
            torch.device("cpu"), on_step, free_memory=free, poll=self.agree_on_cancel,
        )
        return result if self.ranks.is_first else None

    def agree_on_cancel(self) -> None:
        """Stop when any worker was told to. Runs before every transformer block (the stage's ``poll``), so a
        cancel lands within one block; all workers run the same blocks in the same order, so they all leave at
        the same block, or the ones left would wait forever in the next collective. One all-reduce of one value
        per block: negligible beside the block's own all-to-alls."""
        import torch.distributed as dist

        while not self.cancel_seen and self.connection.poll(0):
            if messages.receive(self.connection)[0] == "cancel":
                self.cancel_seen = True
        flag = torch.tensor([1.0 if self.cancel_seen else 0.0], device=self.ranks.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item():
            raise Cancelled()


FAIL_ENV = process_ranks.FAIL_ENV


def quiet_libraries() -> None:
    """N workers would each repeat diffusers' and transformers' notices (experimental APIs, loading bars) in
    ComfyUI's console; their errors still show, and the pack's own errors come back to the node."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()


def main() -> int:
    process_ranks.watch_parent()  # a killed ComfyUI takes its workers with it, even mid-collective
    quiet_libraries()
    host, port = os.environ["HUNYUAN_I2V_POOL"].rsplit(":", 1)
    connection = Client((host, int(port)), authkey=bytes.fromhex(os.environ["HUNYUAN_I2V_POOL_KEY"]))
    messages.send(connection, {"rank": int(os.environ["RANK"])})
    ranks = process_ranks.join(os.environ.get("HUNYUAN_I2V_DEVICE"))
    try:
        Worker(connection, ranks).serve()
    finally:
        process_ranks.leave()
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
