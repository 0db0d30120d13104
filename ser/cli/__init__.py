"""The ``ser`` command: one subcommand per stage (``ser.cli.parser`` defines them, ``ser.cli.commands`` runs them).

This module turns what a command raises into an exit code and one line on stderr (``ser.cli.parser.DESCRIPTION``
lists the codes); ``python -m ser.cli`` and the ``ser`` console script both enter here.
"""

from __future__ import annotations

import errno
import os
import sys

from ser._util.io import DiskFull, InputError, OutputLocked
from ser._util.logs import close_log_files, setup_logging
from ser.cli.parser import build_parser

EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_LOCKED, EXIT_INTERRUPTED = 1, 2, 3, 130
EXTRAS = {"ray": "ray", "optuna": "ray", "torch": "models", "transformers": "models", "faster_whisper": "models",
          "ctranslate2": "models", "soundfile": "models", "soxr": "models", "vaderSentiment": "models",
          "sentencepiece": "models", "mlflow": "track", "tensorboardX": "track", "tensorboard": "track",
          "wandb": "track", "datasets": "hf"}
"""Which pip extra (pyproject's optional-dependencies) brings a module a command imports on demand."""

__all__ = ["build_parser", "entry", "main"]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or args.debug_anywhere or os.environ.get("SER_DEBUG", "") not in ("", "0")
    setup_logging(args.command, args.verbose, args.quiet)

    def fail(message: str, code: int) -> int:
        if debug:
            raise
        print(f"ser {args.command}: {message}", file=sys.stderr)
        return code

    try:
        return args.func(args)
    except BrokenPipeError:                  # `ser evaluate ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        return fail(f"error: this command needs {exc.name}, which is not installed: pip install "
                    f"\"entropy-ser[{extra}]\"", EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        hint = "; rerun with --resume to continue" if args.command in ("tune", "cross") else \
            "; rerun the same command to continue (finished work is kept)"
        return fail(f"interrupted{hint}", EXIT_INTERRUPTED)
    except OutputLocked as exc:
        return fail(f"error: {_one_line(exc)}", EXIT_LOCKED)
    except (InputError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        return fail(f"error: {_one_line(exc)}", EXIT_BAD_INPUT)
    except DiskFull as exc:
        return fail(f"error: {exc.strerror}; files already written are complete and were kept", EXIT_FAILURE)
    except OSError as exc:
        what = "disk full" if exc.errno == errno.ENOSPC else exc.strerror or type(exc).__name__
        where = f" while writing {exc.filename}" if exc.filename else ""
        return fail(f"error: {what}{where}; files already written are complete and were kept", EXIT_FAILURE)
    except RuntimeError as exc:
        return fail(f"error: {_one_line(exc)}", EXIT_FAILURE)
    except Exception as exc:                 # not the input: a bug, which a traceback shows best
        return fail(f"internal error: {type(exc).__name__}: {_one_line(exc)[:300]} (rerun with --debug for the "
                    f"traceback, and please report it)", EXIT_FAILURE)
    finally:
        close_log_files()


def entry() -> None:
    """The ``ser`` console script: ``main`` with Ray's native stderr lines diverted to the log."""
    from ser._util.logs import divert_native_stderr

    divert_native_stderr()
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:               # the pipe closed after the last write: nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)
