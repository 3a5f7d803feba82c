"""One reader for the JSON ``config`` that a model file may carry in its safetensors metadata.

Files in the wild name the same setting three ways: diffusers' or transformers' constructor names
(``num_attention_heads``, ``d_ff``), and Tencent's own config names (``heads_num``, ``mlp_width_ratio``,
``ffactor_spatial``). Splatting such a dict into a constructor ends in ``TypeError: unexpected keyword argument`` or
``got multiple values``; a zero ends in ``ZeroDivisionError``. Each family describes its settings once, as a table of
``Name``s, and this reader turns a file's dict into typed values under the pack's names: a setting the tensors
already tell (``derived``) is checked against them and never passed on, two names for one setting must agree, and
keys nobody knows are left out with a note.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..errors import ModelFileError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Name:
    key: str  # the name the pack's builder takes
    aliases: tuple[str, ...] = ()  # the same setting in the other dialects
    kind: str = "int"  # int | float | bool | str | ints (a list of positive ints)
    derived: bool = False  # also read from the tensors' shapes: checked against them, never passed on
    convert: Callable[[Any], Any] | None = None  # a dialect's spelling of the value -> the pack's
    # the values the library takes (for "str"); a callable is asked only when a file sets the name, so that the
    # library's own table (transformers' activations, say) is imported only then
    choices: Iterable[str] | Callable[[], Iterable[str]] = ()


def _typed(name: Name, given: str, value, source: str):
    def bad(allowed: str):
        return ModelFileError(
            f"{source}: its config metadata sets '{given}' to {value!r}; {allowed}. Fix or remove that entry "
            "(the tensors tell most sizes on their own)."
        )

    def number(v) -> bool:  # Python's json reads NaN and Infinity, which int() cannot take
        return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)

    if name.convert is not None:
        value = name.convert(value)
    if name.kind == "int":
        if not number(value) or int(value) != value or value <= 0:
            raise bad("it must be a whole number above 0")
        return int(value)
    if name.kind == "float":
        if not number(value) or value <= 0:
            raise bad("it must be a number above 0")
        return float(value)
    if name.kind == "bool":
        if not isinstance(value, bool):
            raise bad("it must be true or false")
        return value
    if name.kind == "str":
        choices = sorted(name.choices() if callable(name.choices) else name.choices)
        if not isinstance(value, str) or not value or (choices and value not in choices):
            raise bad(f"it must be one of {', '.join(choices)}" if choices else "it must be a name")
        return value
    if name.kind == "ints":
        if not isinstance(value, (list, tuple)) or not value or any(
                not number(v) or int(v) != v or v <= 0 for v in value):
            raise bad("it must be a list of whole numbers above 0")
        return tuple(int(v) for v in value)
    raise ValueError(f"unknown kind {name.kind}")


def read(raw: dict, table: tuple[Name, ...], source: str, from_shapes: dict | None = None,
         ignore: tuple[str, ...] = ()) -> tuple[dict, list[str]]:
    """(values under the pack's names, notes) from a file's config dict ``raw``.

    ``from_shapes``: the values the tensors give (same names); a derived setting must equal them. ``ignore``: keys
    another part of the loader reads (the release's name, say).
    """
    by_name = {alias: name for name in table for alias in (name.key,) + name.aliases}
    found: dict[str, tuple[str, Any]] = {}
    unknown = []
    for given, value in raw.items():
        if given.startswith("_") or given in ignore:
            continue
        name = by_name.get(given)
        if name is None:
            unknown.append(given)
            continue
        value = _typed(name, given, value, source)
        if name.key in found and found[name.key][1] != value:
            first, earlier = found[name.key]
            raise ModelFileError(
                f"{source}: its config metadata gives one setting two values, '{first}' = {earlier!r} and "
                f"'{given}' = {value!r}. Remove one of them."
            )
        found[name.key] = (given, value)
    from_shapes = from_shapes or {}
    table_by_key = {name.key: name for name in table}
    for key, (given, value) in found.items():
        if key in from_shapes and from_shapes[key] != value:
            raise ModelFileError(
                f"{source}: its config metadata says '{given}' = {value!r}, but its tensors are shaped for "
                f"{from_shapes[key]!r}. The metadata belongs to another model: remove that entry."
            )
    values = {key: value for key, (_, value) in found.items() if not table_by_key[key].derived}
    notes = [f"{source}: config metadata entries this loader does not use were ignored: {', '.join(sorted(unknown))}."
             ] if unknown else []
    return values, notes


def read_logged(raw: dict, names, source: str, shapes: dict) -> dict:
    """``read`` for the text encoders, whose loaders have no info to show: ignored entries are logged. transformers 5
    (and Qwen's rope_scaling) nest the rope settings, which are taken out first."""
    raw = dict(raw)
    nested = raw.pop("rope_parameters", None) or raw.pop("rope_scaling", None)
    if isinstance(nested, dict):  # transformers 5 (and Qwen's rope_scaling) nest the rope settings
        for key in ("rope_theta", "mrope_section"):
            if key in nested:
                raw.setdefault(key, nested[key])
    values, notes = read(raw, names, source, shapes)
    for note in notes:
        log.warning(note)
    return values


def head_dim(meta: dict, default: int, hidden: int, source: str) -> int:
    """The head size: from the metadata's head count or head size (they must agree), else ``default``."""
    heads, head_dim = meta.get("num_attention_heads"), meta.get("head_dim")
    if heads is not None:
        if hidden % heads:
            raise ModelFileError(f"{source}: its config metadata gives {heads} attention heads, which do not divide "
                                 f"its width {hidden}. Remove that entry.")
        if head_dim is not None and head_dim * heads != hidden:
            raise ModelFileError(f"{source}: its config metadata gives {heads} heads of size {head_dim}, but its "
                                 f"width is {hidden}. Remove one of the entries.")
        return hidden // heads
    head_dim = head_dim or default
    if hidden % head_dim:
        raise ModelFileError(f"{source}: a head size of {head_dim} does not divide its width {hidden}; set "
                             "'head_dim' (or 'num_attention_heads') in its config metadata.")
    return head_dim


def qk_norm_name(value):
    """Tencent writes ``qk_norm: true`` with ``qk_norm_type: "rms"``; diffusers takes ``qk_norm="rms_norm"``."""
    if not isinstance(value, (bool, str)):
        return value  # refused by the type check
    return {True: "rms_norm", "rms": "rms_norm"}.get(value, value)


# Both families' files hold weight-only (RMS) query/key norms, so that is the one spelling their models take.
QK_NORMS = ("rms_norm",)


def transformers_activations():
    from transformers.activations import ACT2FN

    return ACT2FN.keys()


def diffusers_activations():
    from diffusers.models.activations import ACT2CLS

    return ACT2CLS.keys()
