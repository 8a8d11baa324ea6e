"""The one CLI runner of the `bin/` modules: argument parsing, logging setup, clean error exits.

Why one: every CLI should fail the same way on bad input (one line naming the file, exit
status 1, no stack trace) and still let Python callers (tests, other tools) see the
exception or the result.
"""
import argparse
import logging
import sys
from typing import Any, Callable, List, Optional, Sequence, Tuple, Type

from espnet_avsr.common.errors import DataPrepError

LOG_FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"


def add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log_level",
        default="INFO",
        choices=("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"),
        help="logging level",
    )


def run_cli(
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], Any],
    cmd: Optional[List[str]] = None,
    errors: Tuple[Type[BaseException], ...] = (DataPrepError, ValueError),
    prog: Optional[str] = None,
    replace_handlers: bool = True,
) -> Any:
    """Parse args, set up logging, run ``body`` and return what it returns (None -> 0).

    An error of ``errors`` is bad input. By default it is logged on one line and the
    process exits 1, except when ``cmd`` is given (a Python caller), which gets the
    exception. With ``prog`` it always exits with ``"<prog>: error: <message>"`` on stderr
    (argparse's own style), which is what Python callers of those tools check.
    ``replace_handlers=False`` leaves a caller's logging handlers in place (the decoding,
    packing, init and corpus tools log progress their Python callers read).
    """
    args = parser.parse_args(cmd)
    if hasattr(args, "log_level"):
        logging.basicConfig(level=getattr(logging, args.log_level), format=LOG_FORMAT, force=replace_handlers)
    try:
        result = body(args)
    except errors as e:
        if prog is not None:
            sys.exit(f"{prog}: error: {e}")
        logging.error("%s", e)
        if cmd is not None:  # called from Python (tests): let the caller see the exception
            raise
        sys.exit(1)
    return 0 if result is None else result


def exit_status(result: Any) -> int:
    """What a script's ``__main__`` exits with: an int result as is, anything else 0."""
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def main_exit(main: Callable[[Optional[Sequence[str]]], Any]) -> None:
    """Run ``main()`` as a script: exit with :func:`exit_status` of its result."""
    sys.exit(exit_status(main()))
