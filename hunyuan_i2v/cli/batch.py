"""Batch: a JSON Lines or CSV file of jobs, rendered one after another with the models loaded once.

Every job is checked before the models load (a typo on line 40 is found at
once, not hours later). Jobs whose output file exists are skipped, so a batch
that was stopped picks up where it left off; a job that fails while
rendering is reported at the end and the others go on.
"""

from __future__ import annotations

import csv
import json
import tempfile
import traceback
from pathlib import Path

from ..errors import UserInputError
from ..parallel.ranks import share
from . import checks, jobs, options
from .progress import Progress, quiet_libraries
from .render import Renderer, VideoRescued

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")


def read_lines(path: Path) -> list[tuple[str, dict]]:
    """(label, fields) per job; a field left empty (CSV) or null (JSON) is not set."""
    if not path.is_file():
        raise UserInputError(f"Jobs file '{path}' does not exist." if not path.exists()
                             else f"Jobs file '{path}' is a folder; give a .jsonl or .csv file.")
    suffix = path.suffix.lower()
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserInputError(f"Jobs file '{path}' is not UTF-8 text; save it as UTF-8.") from None
    lines: list[tuple[str, dict]] = []
    if suffix in JSON_SUFFIXES:
        for number, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            label = f"{path.name} line {number}"
            try:
                fields = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserInputError(
                    f"{label} is not valid JSON ({exc.msg}, column {exc.colno}); each line holds one job as a JSON "
                    'object, e.g. {"image": "cat.png", "prompt": "a cat walks", "seed": 1}.'
                ) from None
            if not isinstance(fields, dict):
                raise UserInputError(f"{label} is not a JSON object; each line holds one job, e.g. "
                                     '{"image": "cat.png", "prompt": "a cat walks"}.')
            lines.append((label, {k: v for k, v in fields.items() if v is not None}))
    elif suffix == ".csv":
        reader = csv.DictReader(content.splitlines())
        for row in reader:
            label = f"{path.name} line {reader.line_num}"
            if None in row:
                raise UserInputError(f"{label} has more cells than the header has columns; quote cells that hold "
                                     "commas.")
            fields = {k.strip(): v for k, v in row.items() if k is not None and v not in (None, "")}
            if fields:
                lines.append((label, fields))
    else:
        raise UserInputError(f"Jobs file '{path}' must be JSON Lines (.jsonl) or CSV (.csv), one job per line.")
    if not lines:
        raise UserInputError(f"Jobs file '{path}' holds no jobs.")
    return lines


def build_jobs(lines: list[tuple[str, dict]], args, jobs_file: Path, output_dir: Path):
    """Jobs from the file's fields, with the command line's settings for the ones a job leaves out.

    Returns the jobs and the problems found, as (line index, sentence), so every bad line is reported at once.
    """
    defaults = {s.name: getattr(args, s.name) for s in options.PER_VIDEO}
    built, problems = [], []
    for number, (label, fields) in enumerate(lines, 1):
        try:
            built.append(_job(number, label, fields, defaults, jobs_file, output_dir))
        except UserInputError as exc:
            problems.append((number, str(exc)))
    seen: dict[Path, str] = {}
    for job in built:
        if job.output in seen:
            problems.append((job.number, f"{job.label}: writes '{job.output}', as {seen[job.output]} does; give "
                                         "each job its own 'output'."))
        seen.setdefault(job.output, job.label)
    return built, problems


def _job(number: int, label: str, fields: dict, defaults: dict, jobs_file: Path, output_dir: Path) -> jobs.Job:
    fields = {str(k).strip().lower().replace("-", "_"): v for k, v in fields.items()}
    unknown = sorted(set(fields) - set(options.JOB_KEYS) - {"image", "output"})
    if unknown:
        raise UserInputError(
            f"{label}: unknown field {', '.join(repr(u) for u in unknown)}; a job may set image, output and "
            f"{', '.join(options.JOB_KEYS)}."
        )
    image = Path(str(fields.pop("image"))).expanduser() if "image" in fields else None
    if image is not None and not image.is_absolute():
        image = jobs_file.parent / image
    name = fields.pop("output", None)
    if name is None:
        name = f"{number:04d}_{image.stem if image else 'demo'}.mp4"
    output = Path(str(name)).expanduser()
    output = output if output.is_absolute() else output_dir / output
    settings = dict(defaults)
    for key, value in fields.items():
        setting = options.JOB_KEYS[key]
        try:
            settings[setting.name] = setting.parse(value)
        except options.SettingError as exc:
            raise UserInputError(f"{label}: {exc}") from None
    return jobs.Job(label, image, output, settings, number)


def _check_each(pending: list[jobs.Job], check) -> list[tuple[int, str]]:
    problems = []
    for job in pending:
        try:
            check(job)
        except UserInputError as exc:
            problems.append((job.number, f"{job.label}: {exc}"))
    return problems


def _refuse_if_any(problems: list[tuple[int, str]]) -> None:
    if problems:
        raise UserInputError(_listing([message for _, message in sorted(problems)], "nothing was rendered"))


def _listing(problems: list[str], outcome: str) -> str:
    head = f"{len(problems)} job(s) have a problem ({outcome}):" if len(problems) > 1 else ""
    return "\n  ".join([head] + problems) if head else problems[0]


def run(args, progress: Progress) -> int:
    jobs_file = Path(args.jobs).expanduser()
    lines = read_lines(jobs_file)
    output_dir = Path(args.output_dir).expanduser() if args.output_dir else jobs_file.parent
    if output_dir.exists() and not output_dir.is_dir():
        raise UserInputError(f"--output-dir '{output_dir}' is a file; give a folder.")
    checks.check_folder_writable(output_dir, "--output-dir")
    all_jobs, problems = build_jobs(lines, args, jobs_file, output_dir)
    pending = [job for job in all_jobs if not job.output.exists()]
    if getattr(args, "ranks", None) is not None:  # every process must render the same jobs: the first one's view of the disk decides
        numbers = share(args.ranks, lambda: [job.number for job in pending])
        pending = [job for job in all_jobs if job.number in numbers]
    _refuse_if_any(problems + _check_each(pending, lambda job: jobs.check_paths(job, args.demo)))
    plan = checks.plan_models(args)
    _refuse_if_any(_check_each(pending, lambda job: jobs.check_for_model(job, plan)))
    done_before = len(all_jobs) - len(pending)
    progress.say(f"{len(all_jobs)} job(s) in {jobs_file.name}: {len(pending)} to render"
                 + (f", {done_before} skipped (their output exists; delete it to render again)." if done_before else "."))
    if not pending:
        return 0
    rendered, failed = [], []
    try:
        with tempfile.TemporaryDirectory(prefix="hunyuan_i2v_", ignore_cleanup_errors=True) as workdir, \
                quiet_libraries(args.verbose):
            renderer = Renderer(plan, args, Path(workdir), progress)
            renderer.load()
            for index, job in enumerate(pending, 1):
                progress.say(f"[{index}/{len(pending)}] {job.label}: {job.image or 'demo image'} -> {job.output}")
                try:
                    renderer.render(job)
                    rendered.append(job)
                except (UserInputError, VideoRescued) as exc:
                    failed.append((job, str(exc)))
                    progress.say(f"{job.label} failed: {exc}")
                except Exception as exc:  # noqa: BLE001 - one broken job must not cost the rest of the batch
                    if getattr(args, "ranks", None) is not None:
                        # This process alone failed (the others' errors come through ranks.share together);
                        # they cannot go on without it, so stop and let torchrun end the run.
                        raise
                    failed.append((job, f"{type(exc).__name__}: {exc}"))
                    progress.say(f"{job.label} failed: {type(exc).__name__}: {exc}")
                    if args.verbose:
                        traceback.print_exc()
    finally:
        _summary(progress, rendered, failed, done_before, len(pending))
    return 1 if failed else 0


def _summary(progress: Progress, rendered: list, failed: list, skipped: int, pending: int) -> None:
    not_reached = pending - len(rendered) - len(failed)
    parts = [f"{len(rendered)} rendered", f"{skipped} skipped", f"{len(failed)} failed"]
    if not_reached:
        parts.append(f"{not_reached} not started")
    progress.say("Batch: " + ", ".join(parts) + ".")
    for job, message in failed:
        progress.say(f"  failed: {job.label} ({job.image or 'demo image'} -> {job.output}): {message}")
