"""The processes of one parallel run: joining torch.distributed, and what only the first rank does.

torchrun (one machine or several, with its usual rendezvous) and the pack's
own worker pool both start one process per GPU and describe it with the
standard environment variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT); this module turns those into a process group and a device.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta

import torch

from .. import errors
from ..errors import UserInputError
from ..shared import kernels
from . import messages

# The other ranks wait in a collective while the first decodes and writes a video (minutes at 720p), so the
# process group must not give up after NCCL's default 10 minutes.
WAIT_LIMIT = timedelta(hours=2)
LEAVE_WAIT = timedelta(seconds=30)


@dataclass(frozen=True)
class Ranks:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_first(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device_type: str | None = None) -> Ranks:
    """Join the process group the environment describes; each rank takes GPU LOCAL_RANK (or the CPU, with gloo)."""
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    device_type = device_type or ("cuda" if torch.cuda.is_available() else "cpu")
    if device_type == "cuda":
        kernels.check_several_gpus(device_type)
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise UserInputError(
                f"Process {local_rank} on this machine has no GPU: it has {count}. Start at most {count} processes "
                f"per machine (torchrun --nproc_per_node {count})."
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device_type == "cpu":
        device, backend = torch.device("cpu"), "gloo"
    else:
        raise UserInputError(f"Several processes run on CUDA GPUs or the CPU, not on '{device_type}'.")
    if not dist.is_initialized():
        store = store_for(world)
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=WAIT_LIMIT,
                                **({"store": store} if store is not None else {}),
                                **({"device_id": device} if backend == "nccl" else {}))
    return Ranks(rank, world, local_rank, device)


def leave(wait: bool = True) -> None:
    """Leave the process group, after waiting (a bounded while) until every rank is leaving.

    Tearing gloo down while another rank still talks to it can abort the process ("terminate called
    without an active exception") after its work is done; after an error on one rank, the others may
    never arrive, hence the bound. ``wait=False`` (this rank failed) leaves at once: the others are stuck
    in a collective that waits for this rank, and only this process ending lets torchrun stop them.
    """
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    if not wait:
        return  # the process exits next; destroying the group could block on the peers that wait for us
    try:
        dist.barrier(async_op=True).wait(timeout=LEAVE_WAIT)
    except Exception:  # noqa: BLE001 - a rank that is gone or stuck: leave anyway
        pass
    dist.destroy_process_group()


def store_for(world: int):
    """A FileStore when the worker pool names one (HUNYUAN_I2V_STORE): processes of one machine meet through a
    file, so nothing listens on a network port; None means torch's usual env:// rendezvous (torchrun)."""
    import torch.distributed as dist

    path = os.environ.get(STORE_ENV)
    return dist.FileStore(path, world) if path else None


STORE_ENV = "HUNYUAN_I2V_STORE"


def watch_parent() -> None:
    """End this process when the one that started it is gone, even while blocked in a collective.

    A worker waiting in NCCL or gloo for a peer does not notice its parent (ComfyUI) being killed; a daemon
    thread checks the parent every half second and exits the process (the collective releases the GIL while it
    waits, so the thread runs). On Linux, the kernel's parent-death signal is set as well.
    """
    import threading
    import time

    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001 - the thread below still watches
            pass

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def share(ranks: Ranks, make):
    """The first rank's ``make()``, handed to every rank; an error it raises is raised on every rank.

    Only the first rank encodes (the others need neither text encoders nor VAE), and a bad input found there
    must stop all ranks with the same sentence rather than leave them waiting.
    """
    import torch.distributed as dist

    payload = [None]
    if ranks.is_first:
        try:
            payload[0] = ("ok", messages.to_bytes(make()))
        except Exception as exc:  # noqa: BLE001 - told to the others, then raised here as it is
            payload[0] = ("error", type(exc).__name__, str(exc))
            dist.broadcast_object_list(payload, src=0)
            raise
    dist.broadcast_object_list(payload, src=0)  # pickles only bytes and strings
    if payload[0][0] == "ok":
        return messages.from_bytes(payload[0][1])
    raise errors.rebuild(payload[0][1], payload[0][2], "the first process")


FAIL_ENV = "HUNYUAN_I2V_TEST_FAIL_AT"  # "rank:step[:hang]": that worker fails (or hangs) at that step, once (tests)
_failed_once = []


def injected_failure(rank: int, step: int) -> None:
    """A failure on demand, for the tests of what the pool does when one worker fails mid-sampling."""
    wanted = os.environ.get(FAIL_ENV, "")
    if wanted and not _failed_once and wanted.split(":")[:2] == [str(rank), str(step)]:
        _failed_once.append(True)
        if wanted.endswith(":hang"):
            import time

            time.sleep(3600)
        raise RuntimeError(f"injected failure on worker {rank} at step {step}")
