"""Worker processes that hold the transformer on several GPUs, for a program that is one process (ComfyUI).

Each worker is ``python -m hunyuan_i2v.parallel.worker``, started with the
environment torchrun would give it (RANK, WORLD_SIZE, MASTER_ADDR, ...), so
it joins a torch.distributed group with the others and loads a full copy of
the weights on its GPU. The pool talks to each over an authenticated local
socket (multiprocessing.connection): the sampler's inputs go out, step
progress, previews and the latents come back from the first worker.

Plain subprocesses rather than multiprocessing's spawn: spawn re-imports the
parent's main script in the child, and ComfyUI's main.py does work at import.

The pool stops its workers when it is garbage collected (the loader's output
dropped), when the program exits, or when one of them dies; a dead worker is
reported as an error, and the next run starts the workers again.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from multiprocessing.connection import Listener
from pathlib import Path

import torch

from .. import loading
from ..errors import UserInputError, WorkerError, rebuild
from ..shared import kernels, sequence_parallel
from . import messages, ranks

STARTUP_LIMIT_S = 300  # from process start to connected (imports only; loading the weights is not limited)
POLL_S = 0.2
CANCEL_WAIT_S = 30  # the workers agree on a cancel before every transformer block
# After one worker reports an error, how long the others get to report theirs (an input error is found by all):
# a worker still busy then waits in a collective for the failed one, and never returns, so all are stopped.
PEER_GRACE_S = 3.0
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the hunyuan_i2v package


# Pools with live workers. Each worker holds a whole copy of the weights, so one set of GPUs serves one pool at a
# time: starting a pool stops the others (a stopped pool starts again when its model is next used), as ComfyUI
# unloads one model to make room for another. Without this, changing a loader widget would keep the old
# pool's copies until ComfyUI drops the old output, after the new pool has loaded its own.
_LIVE: "weakref.WeakSet[WorkerPool]" = weakref.WeakSet()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_all() -> None:
    """Stop every running pool (the host wants its GPUs back); each starts again when its model is next used."""
    for pool in list(_LIVE):
        pool.stop()


class WorkerPool:
    """``gpus`` worker processes on ``device_type`` ("cuda", or "cpu" with gloo), each loading ``load_args``."""

    def __init__(self, gpus: int, device_type: str, load_args: dict):
        if gpus < 2:
            raise UserInputError(f"A worker pool needs at least 2 GPUs, got {gpus}.")
        if device_type == "cuda":
            count = torch.cuda.device_count()
            if gpus > count:
                raise UserInputError(f"'GPUs to use' is {gpus} but this machine has {count}; set it to {count} or less.")
        elif device_type != "cpu":
            raise UserInputError(f"Several GPUs need CUDA (or the CPU, for tests), not '{device_type}'.")
        self.gpus, self.device_type, self.load_args = gpus, device_type, dict(load_args)
        self.processes: list[subprocess.Popen] = []
        self.connections: list = []
        self.lock = threading.Lock()  # one job at a time: ComfyUI may run prompts from several threads
        self._finalizer = None

    # ------------------------------------------------------------------ life cycle

    @property
    def running(self) -> bool:
        return bool(self.processes) and all(p.poll() is None for p in self.processes)

    def start(self, poll=None) -> dict:
        """Start the workers and load the model in each; returns the first worker's description of it.

        ``poll`` may raise (Cancel) while they load; the workers are then stopped at once (a load cannot be
        interrupted half way and would hold the GPUs for minutes)."""
        self.stop()
        for other in list(_LIVE):
            if other is not self:
                other.stop()
        key = secrets.token_bytes(32)
        listener = Listener(("127.0.0.1", 0), authkey=key)
        master_port = _free_port()
        self._store_dir = tempfile.mkdtemp(prefix="hunyuan_i2v_pool_")
        env_base = dict(os.environ)
        env_base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env_base.get("PYTHONPATH")]))
        env_base.update({
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(master_port), "WORLD_SIZE": str(self.gpus),
            "LOCAL_WORLD_SIZE": str(self.gpus), "HUNYUAN_I2V_POOL": f"127.0.0.1:{listener.address[1]}",
            "HUNYUAN_I2V_POOL_KEY": key.hex(), "HUNYUAN_I2V_DEVICE": self.device_type,
            # The workers meet through a file, not a TCP store (which listens on every interface), and their
            # collectives use the loopback interface: nothing of the pool is reachable from the network.
            ranks.STORE_ENV: os.path.join(self._store_dir, "store"),
        })
        if sys.platform.startswith("linux"):
            env_base.update({"GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "lo"})
        try:
            for rank in range(self.gpus):
                env = dict(env_base, RANK=str(rank), LOCAL_RANK=str(rank))
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "hunyuan_i2v.parallel.worker"], env=env, cwd=str(PACKAGE_ROOT),
                ))
            self.connections = self._accept(listener)
        except BaseException:
            self.stop()
            raise
        finally:
            listener.close()
        self._finalizer = weakref.finalize(self, _shutdown, self.processes, self.connections)
        _LIVE.add(self)
        return self._all(("load", self.load_args), what="loading the model", poll=poll, wait_on_cancel=False)

    def _accept(self, listener) -> list:
        """Each worker's connection, in rank order; a worker that dies before connecting is an error, not a hang."""
        accepted: dict[int, object] = {}
        failure: list[BaseException] = []

        def accept_all():
            try:
                for _ in range(self.gpus):
                    connection = listener.accept()
                    accepted[messages.receive(connection)["rank"]] = connection
            except BaseException as exc:  # noqa: BLE001 - reported by the waiting thread
                failure.append(exc)

        thread = threading.Thread(target=accept_all, daemon=True)
        thread.start()
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while thread.is_alive():
            thread.join(POLL_S)
            self._check_alive("starting")
            if time.monotonic() > deadline:
                raise WorkerError(f"The GPU workers did not start within {STARTUP_LIMIT_S} s; see the console.")
        if failure:
            raise WorkerError(f"The GPU workers could not connect: {failure[0]}")
        return [accepted[rank] for rank in range(self.gpus)]

    def stop(self, at_once: bool = False) -> None:
        """Stop the workers; ``at_once`` kills them without asking (they are stuck in a collective)."""
        _LIVE.discard(self)
        if at_once:
            for process in self.processes:
                if process.poll() is None:
                    process.kill()
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        else:
            _shutdown(self.processes, self.connections)
        self.processes, self.connections = [], []
        if getattr(self, "_store_dir", None):
            shutil.rmtree(self._store_dir, ignore_errors=True)
            self._store_dir = None

    def _check_alive(self, doing: str) -> None:
        for rank, process in enumerate(self.processes):
            code = process.poll()
            if code is not None:
                self.stop()
                raise WorkerError(
                    f"GPU worker {rank} ({self.device_type}:{rank}) stopped while {doing} (exit code {code}"
                    f"{', killed: out of CPU memory?' if code in (-9, 137) else ''}); its error is in the console. "
                    "The workers were shut down and start again on the next run."
                )

    # ------------------------------------------------------------------ jobs

    def _all(self, message, what: str, on_message=None, poll=None, wait_on_cancel: bool = True):
        """Send ``message`` to every worker and wait for all to finish; returns the first worker's result.

        ``on_message`` gets what the first worker reports on the way (steps); ``poll`` is called while waiting
        and may raise (Cancel), which cancels the job on every worker before it is raised here.
        """
        with self.lock:
            if not self.running:
                raise WorkerError("The GPU workers are not running; run the workflow again to start them.")
            for connection in self.connections:
                messages.send(connection, message)
            results: dict[int, object] = {}
            errors: list = []
            first_error_at = None
            try:
                while len(results) < self.gpus:
                    if poll is not None:
                        poll()
                    self._collect(results, errors, on_message, what)
                    if errors and first_error_at is None:
                        first_error_at = time.monotonic()
                    if first_error_at is not None and len(results) < self.gpus \
                            and time.monotonic() - first_error_at > PEER_GRACE_S:
                        rank, kind, text = errors[0]
                        self.stop(at_once=True)
                        raise rebuild(kind, text + " (The other GPU workers were waiting for this one in a collective "
                                      "and were stopped; they start again on the next run.)",
                                      f"GPU worker {rank} ({what})")
            except BaseException:
                if wait_on_cancel:
                    self._cancel(results, errors, what)
                else:
                    self.stop()
                raise
            if errors:
                rank, kind, text = errors[0]
                raise rebuild(kind, text, f"GPU worker {rank} ({what})")
            return results[0]

    def _collect(self, results: dict, errors: list, on_message, what: str) -> None:
        from multiprocessing.connection import wait

        waiting = [c for rank, c in enumerate(self.connections) if rank not in results]
        ready = wait(waiting, timeout=POLL_S)
        if not ready:
            self._check_alive(what)
            return
        for connection in ready:
            rank = self.connections.index(connection)
            try:
                reply = messages.receive(connection)
            except (EOFError, OSError):
                self._check_alive(what)
                self.stop()
                raise WorkerError(
                    f"GPU worker {rank} closed its connection while {what}; its error is in the console. The workers "
                    "were shut down and start again on the next run."
                ) from None
            kind = reply[0]
            if kind == "step":
                if on_message is not None:
                    on_message(reply[1])
            elif kind == "done":
                results[rank] = reply[1]
            elif kind == "cancelled":
                results[rank] = None
            else:  # ("error", class name, message)
                errors.append((rank, reply[1], reply[2]))
                results[rank] = None

    def _cancel(self, results: dict, errors: list, what: str) -> None:
        """Tell every worker to stop the job and wait until they have; a worker that does not is shut down."""
        if not self.running:
            self.stop()
            return
        try:
            for rank, connection in enumerate(self.connections):
                if rank not in results:
                    messages.send(connection, ("cancel",))
            deadline = time.monotonic() + CANCEL_WAIT_S
            while len(results) < self.gpus and time.monotonic() < deadline:
                self._collect(results, errors, None, what)
            if len(results) < self.gpus:
                self.stop()
        except (WorkerError, OSError, EOFError):
            self.stop()

    def sample(self, transformer, cond, requested, cache: str, cache_threshold: float, on_step=None, poll=None,
               previews: bool = False):
        """Sample on every worker; returns the first worker's stages.SampleResult."""
        if not self.running:  # stopped by another pool, or after a worker died: load again
            self.start(poll)
        job = {
            "cond": cond, "requested": requested, "cache": cache, "cache_threshold": cache_threshold,
            "loras": tuple(transformer.loras), "previews": previews,
        }
        return self._all(("sample", job), what="sampling", on_message=on_step, poll=poll)


def _shutdown(processes: list, connections: list) -> None:
    """Ask the workers to stop, then make sure they have (also run at exit and when the pool is collected)."""
    for connection in connections:
        try:
            messages.send(connection, ("stop",))
            connection.close()
        except Exception:  # noqa: BLE001 - a dead worker's socket
            pass
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def load_model_on_gpus(
    gpus: int,
    path: str | Path,
    weight_dtype: str = "bf16",
    fp8_storage: bool = False,
    attention: str = "native (PyTorch SDPA)",
    offload_mode: str = "model",
    variant: str = "auto",
    compile_blocks: bool = False,
    device_type: str = "cuda",
    poll=None,
):
    """The transformer in a pool of worker processes, one per GPU, each with a full copy of the weights.

    This process keeps a weightless copy (on the meta device) for the model's config; sampling goes to the
    pool (stages.run_sample). For programs that are one process (ComfyUI); the command line uses torchrun.
    ``poll`` is called while the workers load and may raise (Cancel), which stops them.
    """
    loading.check_choices(offload_mode, variant)
    kernels.check_several_gpus(device_type)
    path = Path(path)
    loading.family_for_slot(path, "transformer", "the transformer", "diffusion_models")  # a wrong file fails here, at once
    heads = loading.attention_heads(path)
    if heads:  # before any worker loads a copy of the weights
        sequence_parallel.check_degree(heads, gpus)
    pool = WorkerPool(gpus, device_type, {
        "path": str(path), "weight_dtype": weight_dtype, "fp8_storage": fp8_storage, "attention": attention,
        "offload_mode": offload_mode, "variant": variant, "compile_blocks": compile_blocks,
    })
    try:
        report = pool.start(poll)
    except BaseException:
        pool.stop()  # a file every worker refused, or a worker that died: none is left behind
        raise
    loaded = report["transformer"]
    import diffusers

    with torch.device("meta"):
        loaded.model = getattr(diffusers, report["model_class"]).from_config(report["config"])
    torch.nn.Module.to(loaded.model, loaded.compute_dtype)  # ModelMixin.to would warn about fp32 modules
    loaded.pool = pool
    return loaded
