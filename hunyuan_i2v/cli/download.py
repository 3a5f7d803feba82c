"""``hunyuan-i2v download``: a release's model files from Hugging Face into a ComfyUI models folder.

    hunyuan-i2v download --family 1.5 --release 480p_step_distilled --text-encoder-fp8 --models ~/ComfyUI/models
    hunyuan-i2v download --family 13b --release v2 --models ~/ComfyUI/models --dry-run

The files are those of ``hunyuan_i2v.model_files``. The Hub is asked for every file's size first (so the list and
the free-space check use exact sizes), files already present at that size are skipped, and each file is fetched
into ``<folder>/<name>.part`` beside its final place, which a later run resumes (an HTTP Range request) and which is
renamed once whole: ComfyUI's own layout, no Hugging Face cache or symlinks. ``huggingface_hub`` does the HTTP
(HF_ENDPOINT, HF_TOKEN, proxies, retries within a run, one progress bar per file); it keeps no partial file across
runs in its local-dir mode, hence the ``.part`` file here. Never used by the nodes.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse

from .. import model_files
from ..errors import UserInputError

PART_SUFFIX = ".part"
SPACE_MARGIN = 256 * 1024 * 1024  # room left on the disk after the download; a full disk breaks more than this


class DownloadError(UserInputError):
    """A download that cannot start or finish; the message is one sentence saying why and what to do."""


@dataclass
class Planned:
    file: model_files.ModelFile
    destination: Path
    size: int  # the Hub's size, or the table's when the Hub could not be asked (dry run only)
    exact: bool
    location: str = ""  # where the bytes are (the Hub's redirect), from the metadata request
    problem: str = ""  # why the Hub could not be asked (dry run only)
    unreachable: bool = False  # the problem is the network's, not this file's
    present: bool = False
    resume_from: int = 0

    @property
    def partial(self) -> Path:
        return self.destination.with_name(self.destination.name + PART_SUFFIX)

    @property
    def to_fetch(self) -> int:
        return 0 if self.present else self.size - self.resume_from


def add_parser(sub) -> None:
    releases = {family: ", ".join(model_files.RELEASES[name]) for family, name in model_files.FAMILY_OPTIONS.items()}
    parser = sub.add_parser(
        "download", help="fetch a release's model files from Hugging Face into a ComfyUI models folder",
        allow_abbrev=False,
        description="Fetch the model files of one release (ComfyUI's repackaged files, the ones the example "
                    "workflows name) into a ComfyUI models folder: sizes are shown first, files already there are "
                    "skipped, a stopped download resumes. HF_ENDPOINT and HF_TOKEN are honoured.")
    parser.add_argument("--family", required=True, choices=list(model_files.FAMILY_OPTIONS),
                        help="1.5: HunyuanVideo-1.5 (8.3 B); 13b: HunyuanVideo-I2V (13 B)")
    parser.add_argument("--release", required=True, metavar="RELEASE",
                        help=f"1.5: {releases['1.5']} (the _sr ones: the super-resolution stage alone); "
                             f"13b: {releases['13b']}")
    parser.add_argument("--text-encoder-fp8", action="store_true",
                        help="the fp8_scaled language model (about half the download and memory) instead of the "
                             "full-precision one (default: off)")
    parser.add_argument("--transformer-fp16", action="store_true",
                        help="the fp16 transformer where the release also has an fp8_scaled one (twice the "
                             "download) (default: fp8_scaled where there is one)")
    parser.add_argument("--upscale", choices=list(model_files.UPSCALES),
                        help="1.5 only: also the super-resolution transformer and latent upsampler to this size "
                             "(480p videos go to 720p, 720p videos to 1080p) (default: none)")
    parser.add_argument("--models", default=os.environ.get("HUNYUAN_I2V_MODELS"), metavar="FOLDER",
                        help="the ComfyUI models folder; files go to its diffusion_models/, vae/, text_encoders/, "
                             "clip_vision/, latent_upscale_models/ (default: $HUNYUAN_I2V_MODELS)")
    parser.add_argument("--dry-run", action="store_true", help="list the files, sizes and places; fetch nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (default: off)")


def choose_files(args) -> list[model_files.ModelFile]:
    family = model_files.FAMILY_OPTIONS[args.family]
    if args.release not in model_files.RELEASES[family]:
        raise DownloadError(f"--release {args.release} is not a release of --family {args.family}; use one of: "
                            f"{', '.join(model_files.RELEASES[family])}.")
    try:
        return model_files.files_for(family, args.release, text_encoder_fp8=args.text_encoder_fp8,
                                     fp8=not args.transformer_fp16, upscale=args.upscale)
    except ValueError as exc:
        raise DownloadError(str(exc)) from None


def run(args, say=print) -> int:
    if not args.models:
        raise DownloadError("Say where the files go: --models <your ComfyUI/models folder> (or set "
                            "HUNYUAN_I2V_MODELS).")
    models = Path(args.models).expanduser()
    if models.exists() and not models.is_dir():
        raise DownloadError(f"--models {models} is a file; give the ComfyUI models folder.")
    files = choose_files(args)
    plan: list[Planned] = []
    unreachable = ""  # once the Hub cannot be reached, a dry run stops asking (each try may wait for a timeout)
    for file in files:
        plan.append(_plan(file, models, tolerate_offline=args.dry_run, unreachable=unreachable))
        if plan[-1].problem and plan[-1].unreachable:
            unreachable = plan[-1].problem
    _show(plan, models, say, args.dry_run)
    if args.dry_run:
        return 0
    stale = [p for p in plan if p.destination.is_file() and not p.present]
    if stale:
        first = stale[0]
        raise DownloadError(
            f"{first.destination} is {_size(first.destination.stat().st_size)} but the Hub's file is "
            f"{_size(first.size)}: a partial or different file, perhaps left by a download that stopped; delete it "
            "(this command keeps its own partial downloads as .part files and resumes them) and run again.")
    needed = sum(p.to_fetch for p in plan)
    _check_space(models, needed)
    for entry in plan:
        if not entry.present:
            _fetch(entry, say, quiet=args.quiet)
    say(f"Done: the files are in {models}." if needed else "Nothing to fetch: every file is already there.")
    return 0


# ---------------------------------------------------------------------------- the Hub

def _hub():
    """huggingface_hub, imported when a download is asked for (the package comes with diffusers)."""
    import huggingface_hub

    return huggingface_hub


def _endpoint() -> str:
    # Read now, not when huggingface_hub was imported (its constants read HF_ENDPOINT once).
    return (os.environ.get("HF_ENDPOINT") or _hub().constants.ENDPOINT).rstrip("/")


def _network_errors() -> tuple[type[BaseException], ...]:
    """The HTTP library's transport errors (huggingface_hub 2.x uses httpx2, 1.x httpx)."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for name in ("httpx2", "httpx"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        errors.append(module.TransportError)
    return tuple(errors)


def _explain(exc: BaseException, file: model_files.ModelFile, endpoint: str) -> DownloadError:
    """The Hub's or the network's error as one sentence naming the file and what to do."""
    hub = _hub()
    errors = hub.errors
    where = f"{file.repo}/{file.path}"
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return DownloadError(f"HF_HUB_OFFLINE is set, so {file.name} cannot be fetched; unset it and run again.")
    if isinstance(exc, errors.GatedRepoError):
        return DownloadError(f"{file.repo} is gated: accept its terms on {endpoint}/{file.repo} with your account, "
                             "log in (hf auth login, or set HF_TOKEN) and run again.")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, errors.RemoteEntryNotFoundError) or status == 404 and not isinstance(
            exc, errors.RepositoryNotFoundError):
        return DownloadError(f"{where} is not on {endpoint} (404): the file may have been renamed or removed; "
                             f"look in {endpoint}/{file.repo} for its new name and fetch it by hand.")
    if isinstance(exc, errors.RepositoryNotFoundError) or status == 401:
        return DownloadError(f"{endpoint} refused {where} (401: not found or needs a login): log in (hf auth "
                             "login, or set HF_TOKEN) if the repository is private or gated, and run again.")
    if status == 403:
        return DownloadError(f"{endpoint} refused {where} (403): your token has no access to {file.repo}; accept "
                             "the repository's terms or use a token that can read it.")
    if isinstance(exc, errors.HfHubHTTPError):
        return DownloadError(f"{endpoint} answered {status or 'an error'} for {where}; try again later.")
    if isinstance(exc, _network_errors()):
        return DownloadError(f"Could not reach {endpoint} for {file.name} ({type(exc).__name__}): check the "
                             "network connection or proxy (or set HF_ENDPOINT to a mirror) and run again.")
    return DownloadError(f"Could not fetch {file.name} from {endpoint}: {exc}")


def _plan(file: model_files.ModelFile, models: Path, tolerate_offline: bool, unreachable: str = "") -> Planned:
    hub = _hub()
    endpoint = _endpoint()
    destination = models / file.folder / file.name
    # Built here: hf_hub_url's template holds the endpoint of the moment huggingface_hub was imported.
    url = f"{endpoint}/{file.repo}/resolve/{model_files.REVISION}/{quote(file.path)}"
    try:
        if unreachable:
            raise _Unreachable(unreachable)
        meta = hub.get_hf_file_metadata(url, endpoint=endpoint)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a sentence
        problem = str(exc) if isinstance(exc, _Unreachable) else str(_explain(exc, file, endpoint))
        if not tolerate_offline:
            raise DownloadError(problem) from None
        network = isinstance(exc, (_Unreachable, hub.errors.OfflineModeIsEnabled) + _network_errors())
        entry = Planned(file, destination, file.size, exact=False, problem=problem, unreachable=network)
    else:
        entry = Planned(file, destination, meta.size if meta.size is not None else file.size,
                        exact=meta.size is not None, location=meta.location or url)
    if destination.is_file() and destination.stat().st_size == entry.size:
        entry.present = True
    elif entry.partial.is_file():
        done = entry.partial.stat().st_size
        entry.resume_from = done if done <= entry.size else 0  # a longer .part is of another version: start over
    return entry


class _Unreachable(Exception):
    """The Hub could not be reached for an earlier file of the same run."""


def _size(size: int) -> str:
    return model_files.shown_size(size)


def _show(plan: list[Planned], models: Path, say, dry_run: bool) -> None:
    say(f"Model files for {models}:")
    width = max(len(p.file.relative_path) for p in plan)
    for entry in plan:
        if entry.present:
            state = "present, skipped"
        elif entry.resume_from:
            state = f"resume: {_size(entry.to_fetch)} left"
        else:
            state = "would fetch" if dry_run else "to fetch"
        approx = "" if entry.exact else " (about; the Hub could not be asked)"
        say(f"  {entry.file.relative_path:<{width}}  {_size(entry.size):>8}{approx}  {state}")
    unknown = next((p.problem for p in plan if not p.exact), None)
    if unknown:
        say(f"Sizes marked 'about' are the table's: {unknown}")
    say(f"To fetch: {_size(sum(p.to_fetch for p in plan))} of {_size(sum(p.size for p in plan))}.")


def _check_space(models: Path, needed: int) -> None:
    if not needed:
        return
    existing = models
    while not existing.exists():  # the folder may not exist yet: ask about the disk it will be on
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < needed + SPACE_MARGIN:
        raise DownloadError(f"Not enough space: the files need {_size(needed)} (and {_size(SPACE_MARGIN)} to spare) "
                            f"but {existing} has {_size(free)} free; free some space or choose another --models "
                            "folder, then run again.")


def _fetch(entry: Planned, say, quiet: bool) -> None:
    hub = _hub()
    from huggingface_hub.file_download import http_get  # public in the module, not re-exported at the top

    endpoint = _endpoint()
    file = entry.file
    entry.destination.parent.mkdir(parents=True, exist_ok=True)
    headers = hub.utils.build_hf_headers()
    if urlparse(entry.location).netloc != urlparse(endpoint).netloc:
        headers.pop("authorization", None)  # the bytes come from a CDN: the token stays with the Hub
    start = entry.resume_from
    mode = "r+b" if start else "wb"
    # Transport errors come after huggingface_hub's own retries (it resumes while bytes keep arriving); an HTTP
    # error status is not retried.
    stopped = _network_errors() + (hub.errors.HfHubHTTPError,)
    if not quiet:
        say(f"{file.relative_path}: {'resuming at ' + _size(start) if start else 'fetching'} ({_size(entry.size)})")
    try:
        with open(entry.partial, mode) as out:
            out.seek(start)
            out.truncate()
            bar = {"tqdm_class": _silent_bar()} if quiet else {}
            http_get(entry.location, out, resume_size=start, headers=headers, expected_size=entry.size,
                     displayed_filename=file.name, **bar)
    except KeyboardInterrupt:
        raise DownloadError(f"Stopped; {entry.partial} keeps what arrived and the same command resumes it.") from None
    except stopped as exc:
        kept = entry.partial.stat().st_size if entry.partial.exists() else 0
        raise DownloadError(f"{str(_explain(exc, file, endpoint)).rstrip('.')}; {_size(kept)} of {file.name} are "
                            f"kept in {entry.partial.name} and the next run resumes from there.") from None
    except OSError as exc:
        if exc.errno is not None and exc.errno == 28:  # ENOSPC
            raise DownloadError(f"The disk filled up while writing {entry.partial}; free some space and run the "
                                "same command again (it resumes).") from None
        if "Consistency check failed" in str(exc):
            entry.partial.unlink(missing_ok=True)
            raise DownloadError(f"{file.name} arrived with the wrong size; the partial file was removed, run the "
                                "same command again.") from None
        raise DownloadError(f"Could not write {entry.partial}: {exc.strerror or exc}.") from None
    if entry.partial.stat().st_size != entry.size:
        raise DownloadError(f"{entry.partial} is {_size(entry.partial.stat().st_size)}, not {_size(entry.size)}; "
                            "run the same command again to resume it.")
    os.replace(entry.partial, entry.destination)


def _silent_bar():
    from tqdm.auto import tqdm

    class Silent(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent

