"""Account for every utterance of a recipe dir end to end (TextGrid -> data -> ROI -> dump -> hyps).

    python -m espnet_avsr.bin.account_utts --recipe egs2/misp_avsr/avsr1 [--sets dev_far eval_far] \
        [--json_out accounting.json]

Prints a table of counts in/out/dropped-by-reason per stage; exits 1 when an
utterance disappeared without a recorded reason.
"""
import argparse
import logging
from typing import List, Optional

from espnet_avsr.dataprep.accounting import account_recipe
from espnet_avsr.common.cli import add_log_level, run_cli
from espnet_avsr.common.fileio import atomic_write_json


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", required=True, help="recipe dir holding data/, dump/, exp/")
    p.add_argument("--sets", nargs="*", default=None, help="prepared sets (default: all data/*/prep_report.json)")
    p.add_argument("--data_dir", default="data")
    p.add_argument("--dumpdir", default="dump")
    p.add_argument("--expdir", default="exp")
    p.add_argument("--json_out", default=None, help="also write the counts as JSON")
    add_log_level(p)
    return p


def _body(args: argparse.Namespace) -> int:
    acc = account_recipe(args.recipe, args.sets, args.data_dir, args.dumpdir, args.expdir)
    print(acc.table())
    if args.json_out:
        atomic_write_json(args.json_out, acc.as_dict())
    if not acc.ok:
        logging.error("some utterances disappeared without a recorded reason (see LOST lines above)")
        return 1
    return 0


def main(cmd: Optional[List[str]] = None) -> int:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    raise SystemExit(main())
