"""Command line: the same local path as the nodes, from model files to MP4 files.

    hunyuan-i2v generate --image in.png --prompt "..." --output out.mp4 --models ~/ComfyUI/models ...
    hunyuan-i2v batch jobs.jsonl --output-dir videos/ --models ~/ComfyUI/models ...
    hunyuan-i2v generate --demo --output demo.mp4      # tiny random model: output is noise
    hunyuan-i2v download --family 1.5 --release 480p_step_distilled --models ~/ComfyUI/models
    torchrun --nproc_per_node 4 -m hunyuan_i2v generate ...   # one video on 4 GPUs

(``python -m hunyuan_i2v`` from the repository folder is the same command.)
Everything that can be checked is checked before a model is loaded; a
problem exits with code 2 and one sentence. Progress is shown per stage.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import torch

from ..errors import UserInputError
from ..parallel import ranks
from . import batch, checks, download, jobs, options
from .progress import Progress, quiet_libraries
from .render import Renderer, VideoRescued

EXIT_FAILED = 1  # the work ran but a video could not be made or written where asked
EXIT_USAGE = 2  # a setting, file or path to fix (argparse uses 2 as well)
EXIT_INTERRUPTED = 130


def generate(args, progress: Progress) -> int:
    job = jobs.from_args(args)
    jobs.check_paths(job, args.demo)
    plan = checks.plan_models(args)
    jobs.check_for_model(job, plan)
    # Removed however the run ends: the demo model is written here.
    with tempfile.TemporaryDirectory(prefix="hunyuan_i2v_", ignore_cleanup_errors=True) as workdir, \
            quiet_libraries(args.verbose):
        Renderer(plan, args, Path(workdir), progress).render(job)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = options.build_parser()
    args = parser.parse_args(argv)
    first = int(os.environ.get("RANK", "0")) == 0  # under torchrun only the first process shows progress
    progress = Progress(bars=not args.quiet, speak=first)
    args.ranks = None
    succeeded = False
    try:
        if args.command == "download":  # fetches files; none of the video settings below apply
            return download.run(args)
        given = options.given_options(parser, args.command, argv)
        checks.check_combinations(args, given)
        checks.apply_demo_defaults(args, given)
        if ranks.launched_by_torchrun():
            args.ranks = ranks.join(checks.parse_device(args.device).type)
            progress.say(f"{args.ranks.world} processes share each video (sequence parallel).")
        code = generate(args, progress) if args.command == "generate" else batch.run(args, progress)
        succeeded = code == 0
        return code
    except UserInputError as exc:
        print(f"error: {exc}" if first else f"error (process {os.environ.get('RANK')}): {exc}", file=sys.stderr)
        return EXIT_USAGE
    except torch.OutOfMemoryError as exc:  # the stages' message says what to change
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except VideoRescued as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("Interrupted; temporary files were removed.", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if args.ranks is not None:
            # After an error the other ranks may never reach the exit barrier (they wait in a collective for this
            # one): leave at once, so torchrun sees this process end and stops the others within seconds.
            ranks.leave(wait=succeeded)
