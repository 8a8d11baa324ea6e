"""Shared plumbing of the dataprep CLIs: logging setup and clean error exits."""
import argparse
import logging
import sys
from typing import Callable, List, Optional

from espnet_avsr.dataprep.errors import DataPrepError

LOG_FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"


def add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log_level",
        default="INFO",
        choices=("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"),
        help="logging level",
    )


def run_cli(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int], cmd: Optional[List[str]] = None) -> int:
    """Parse args, set up logging, run `body`; bad input exits 1 with a one-line message."""
    args = parser.parse_args(cmd)
    logging.basicConfig(level=getattr(logging, args.log_level), format=LOG_FORMAT, force=True)
    try:
        return int(body(args) or 0)
    except (DataPrepError, ValueError) as e:
        logging.error("%s", e)
        if cmd is not None:  # called from Python (tests): let the caller see the exception
            raise
        sys.exit(1)
