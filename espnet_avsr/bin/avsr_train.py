"""Train an AVSR model (or collect its feature stats) with ESPnet's trainer: AVSRTask.main.

    python -m espnet_avsr.bin.avsr_train --config conf/train_avsr.yaml \
        --train_data_path_and_name_and_type dump/raw/train/wav.scp,speech,sound \
        --train_data_path_and_name_and_type dump/raw/train/roi.scp,video,npy \
        --train_data_path_and_name_and_type dump/raw/train/text,text,text ...
"""

from __future__ import annotations

from typing import Optional, Sequence

from espnet_avsr.tasks.avsr import AVSRTask


def get_parser():
    return AVSRTask.get_parser()


def main(cmd: Optional[Sequence[str]] = None) -> None:
    AVSRTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
