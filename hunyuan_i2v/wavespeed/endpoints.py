"""WaveSpeed's Hunyuan image-to-video endpoints, described as data.

Each :class:`Endpoint` says everything the pack needs to know about one hosted
model: its path, the parameters it takes (with ranges, choices and defaults),
how the start image is sent, and how WaveSpeed prices a run. The node builds
its widgets from this table, jobs validate against it before anything is paid,
and the journal keys on it, so another endpoint is one more entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Any, Mapping

from ..errors import UserInputError

INT, CHOICE, BOOL = "int", "choice", "bool"
PRICES_PAGE = "https://wavespeed.ai/models"


@dataclass(frozen=True)
class Param:
    """One request field; ``name`` is both the API field and the widget name."""

    name: str
    kind: str  # INT | CHOICE | BOOL
    default: Any
    tooltip: str
    low: int | None = None
    high: int | None = None
    choices: tuple = ()
    # The widget also offers "auto": choices[0] for landscape images, choices[1] for portrait ones.
    auto_by_orientation: bool = False

    def check(self, value: Any, title: str) -> Any:
        """The value as the API takes it, or an error naming the allowed values."""
        if self.kind == INT:
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise UserInputError(f"{self.name} must be a whole number for {title} (got {value!r}).")
            value = int(value)
            if not self.low <= value <= self.high:
                raise UserInputError(f"{self.name} is {value}; {title} accepts {self.low}..{self.high}. "
                                     "Set it within that range.")
            return value
        if self.kind == CHOICE:
            if value not in self.choices:
                allowed = ", ".join(str(c) for c in self.choices)
                raise UserInputError(f"{self.name} {value!r} is not offered by {title}; choose one of {allowed}.")
            return value
        if not isinstance(value, bool):
            raise UserInputError(f"{self.name} must be true or false for {title} (got {value!r}).")
        return value


@dataclass(frozen=True)
class FlatPrice:
    """The same price for every run."""

    usd_per_run: float
    checked: bool = True

    def estimate(self, settings: Mapping[str, Any]) -> float:
        return self.usd_per_run

    def describe(self, settings: Mapping[str, Any]) -> str:
        return f"${self.usd_per_run:.2f} {'published' if self.checked else 'assumed'} price"


@dataclass(frozen=True)
class PerSecondPrice:
    """A rate per second of video that depends on one parameter (the resolution)."""

    rate_param: str
    usd_per_second: tuple[tuple[str, float], ...]  # (value of rate_param, rate): pairs keep the table hashable
    seconds_param: str = "duration"
    checked: bool = True

    def rate(self, settings: Mapping[str, Any]) -> float:
        return dict(self.usd_per_second)[settings[self.rate_param]]

    def estimate(self, settings: Mapping[str, Any]) -> float:
        return self.rate(settings) * int(settings[self.seconds_param])

    def describe(self, settings: Mapping[str, Any]) -> str:
        rate = self.rate(settings)
        text = (f"${self.estimate(settings):.2f} = {settings[self.seconds_param]} s at {settings[self.rate_param]} "
                f"x ${rate:.2f}/s")
        return text + (" published price" if self.checked else f", assumed price: check {PRICES_PAGE}")


@dataclass(frozen=True)
class Endpoint:
    key: str
    title: str
    model_id: str
    params: tuple[Param, ...]
    price: FlatPrice | PerSecondPrice
    inline_image: bool      # True: base64 data in the request; False: uploaded first, sent as its URL
    prompt_required: bool
    seed_param: str = "seed"
    random_seed: int = -1

    @property
    def path(self) -> str:
        return f"/api/v3/{self.model_id}"

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def settings(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter of this endpoint, validated; missing ones take their default."""
        names = {p.name for p in self.params}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UserInputError(f"{self.title} takes no {', '.join(unknown)}; its settings are "
                                 f"{', '.join(p.name for p in self.params)}.")
        return {p.name: p.check(values.get(p.name, p.default), self.title) for p in self.params}

    def is_random_seed(self, settings: Mapping[str, Any]) -> bool:
        return settings.get(self.seed_param) == self.random_seed


def _seed(high: int) -> Param:
    return Param("seed", INT, -1, "-1 makes a new video on every run; a fixed seed lets ComfyUI and the journal "
                                  "reuse a finished video instead of paying again.", low=-1, high=high)


HUNYUAN_VIDEO_13B = Endpoint(
    key="hunyuan-video-i2v",
    title="WaveSpeed's HunyuanVideo-I2V (13 B)",
    model_id="wavespeed-ai/hunyuan-video/i2v",
    params=(
        Param("num_inference_steps", INT, 30, "Denoising steps on WaveSpeed (2..30).", low=2, high=30),
        Param("duration", INT, 5, "Video length in seconds (5..10).", low=5, high=10),
        _seed(9_999_999_999),
        Param("size", CHOICE, "1280*720", "Output width*height; auto picks landscape or portrait from the image.",
              choices=("1280*720", "720*1280"), auto_by_orientation=True),
        Param("enable_safety_checker", BOOL, True, "WaveSpeed's content check of the output."),
    ),
    price=FlatPrice(0.40),  # the model page's published price
    inline_image=False,     # the endpoint takes an image URL only
    prompt_required=True,
)

HUNYUAN_VIDEO_15 = Endpoint(
    key="hunyuan-video-1.5-i2v",
    title="WaveSpeed's HunyuanVideo-1.5 image-to-video",
    model_id="wavespeed-ai/hunyuan-video-1.5/image-to-video",
    params=(
        Param("resolution", CHOICE, "720p", "Output resolution; the aspect ratio follows the image.",
              choices=("480p", "720p")),
        Param("duration", CHOICE, 5, "Video length in seconds.", choices=(5, 8)),
        # WaveSpeed's usual seed range; the page lists no bound of its own.
        _seed(2_147_483_647),
    ),
    # Assumed equal to the 1.5 text-to-video endpoint's published rates ($0.02/s at
    # 480p, $0.04/s at 720p): the image-to-video page could not be read when this
    # was written. Check it and set checked=True (or fix the rates).
    price=PerSecondPrice("resolution", (("480p", 0.02), ("720p", 0.04)), checked=False),
    inline_image=True,      # the endpoint takes a URL or base64 data: no upload needed
    prompt_required=False,
)

ENDPOINTS = {endpoint.key: endpoint for endpoint in (HUNYUAN_VIDEO_13B, HUNYUAN_VIDEO_15)}
