"""What the parallel processes tell each other, without pickle.

The conditioning, the settings and the results are the pack's dataclasses
holding tensors. They travel as torch.save data restricted to tensors, plain
containers, numbers, strings and dtypes, and are read back with
``torch.load(weights_only=True)``: nothing received can run code. A dataclass
becomes a dict naming its class relative to this package, and only classes of
this package are rebuilt; that also works where ComfyUI imports the pack
under another module name than the worker processes do.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
from pathlib import Path

import torch

_PACKAGE = __name__.rsplit(".", 2)[0]  # "hunyuan_i2v", or the name ComfyUI gave the pack plus ".hunyuan_i2v"
_CLASS, _PATH = "__dataclass__", "__path__"


def encode(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        module = type(value).__module__
        if not module.startswith(_PACKAGE + "."):
            raise TypeError(f"{type(value).__name__} is not one of this pack's classes")
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {_CLASS: module[len(_PACKAGE) + 1:] + ":" + type(value).__qualname__, "fields": fields}
    if isinstance(value, Path):
        return {_PATH: str(value)}
    if isinstance(value, dict):
        return {key: encode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [encode(item) for item in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return value


def decode(value):
    if isinstance(value, dict):
        if _CLASS in value:
            module, name = value[_CLASS].split(":")
            cls = getattr(importlib.import_module(f"{_PACKAGE}.{module}"), name)
            if not dataclasses.is_dataclass(cls):
                raise TypeError(f"{value[_CLASS]} is not a dataclass")
            return cls(**{key: decode(item) for key, item in value["fields"].items()})
        if _PATH in value:
            return Path(value[_PATH])
        return {key: decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode(item) for item in value]
    if isinstance(value, tuple):
        return tuple(decode(item) for item in value)
    return value


def to_bytes(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(encode(value), buffer)
    return buffer.getvalue()


def from_bytes(data: bytes):
    return decode(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))


def send(connection, value) -> None:
    connection.send_bytes(to_bytes(value))


def receive(connection):
    return from_bytes(connection.recv_bytes())
