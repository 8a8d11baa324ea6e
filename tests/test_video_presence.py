"""VideoPresence, the missing-video contract (issue 17): its answers, and that no other module
reads ``video_missing`` itself.

The type's rules are in ``espnet_avsr/data/presence.py``; ``test_fidelity_presence.py``
shows the models, the switch and decoding compute what they did before the type existed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from espnet_avsr.data.collate import AVCollateFn
from espnet_avsr.data.presence import VideoPresence, is_no_video_marker
from espnet_avsr.models.av_conformer import AVConformerEncoder

PKG = Path(__file__).resolve().parents[1] / "espnet_avsr"
B = torch.tensor


def flags(rows, width):
    """(B, width) bool with True at the listed frame indices of each row."""
    out = torch.zeros(len(rows), width, dtype=torch.bool)
    for b, idx in enumerate(rows):
        out[b, list(idx)] = True
    return out


# ----------------------------------------------------------------------------- reading a batch
def test_from_batch_reads_lengths_and_flags_with_the_contracts_rules():
    # row 0: frame 1 flagged and a flag in its padding (ignored); row 1: every frame flagged;
    # row 2: no frames at all; the mask is wider than the longest video (cut)
    p = VideoPresence.from_batch(B([4, 3, 0]), flags([[1, 5], [0, 1, 2], []], 6))
    assert p.batch_size == 3 and p.width == 4 and p.missing.shape == (3, 4)
    assert p.missing.tolist() == [[False, True, False, False], [True, True, True, False], [False] * 4]
    assert p.valid.sum(1).tolist() == [4, 3, 0]
    assert p.present.tolist() == [[True, False, True, True], [False] * 4, [False] * 4]
    assert p.has_video.tolist() == [True, False, False] and p.absent.tolist() == [False, True, True]


def test_frames_past_a_narrow_mask_exist_and_no_mask_means_all_exist():
    p = VideoPresence.from_batch(B([5, 2]), flags([[0, 1], [0, 1]], 2))
    assert p.missing.shape == (2, 5) and p.present[0].tolist() == [False, False, True, True, True]
    assert p.absent.tolist() == [False, True]
    full = VideoPresence.from_batch(B([5, 2]))
    assert not full.missing.any() and full.present.sum(1).tolist() == [5, 2]


def test_of_utterance_takes_array_like_flags():
    p = VideoPresence.of_utterance(4, np.array([1, 0, 0, 1], dtype=bool))
    assert p.lengths.tolist() == [4] and p.missing.tolist() == [[True, False, False, True]]
    assert VideoPresence.of_utterance(3, [True, True, True]).absent.tolist() == [True]
    assert not VideoPresence.of_utterance(3).missing.any()


def test_empty_batch_and_bad_shapes():
    p = VideoPresence.from_batch(torch.zeros(0, dtype=torch.long), torch.zeros(0, 0, dtype=torch.bool))
    assert p.width == 0 and p.absent.shape == (0,)
    with pytest.raises(ValueError, match="video_missing must be \\(B, T\\) for 2 samples"):
        VideoPresence.from_batch(B([3, 3]), torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="needs its video_lengths"):
        VideoPresence.from_batch(None, None)
    with pytest.raises(ValueError, match="must be bool"):
        VideoPresence(B([2]), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="lengths \\(B,\\) and missing \\(B, T\\)"):
        VideoPresence(B([2, 2]), torch.zeros(1, 2, dtype=torch.bool))


# ----------------------------------------------------------------------------- all missing, the marker
def test_all_missing_is_absent_everywhere():
    p = VideoPresence.all_missing(B([3, 1]))
    assert p.missing.tolist() == [[True] * 3, [True, False, False]]
    assert torch.equal(p.missing, p.valid) and p.absent.all() and not p.present.any()
    assert float(p.missing_fraction()) == 1.0


def test_no_video_marker_becomes_an_absent_sample_in_the_collate():
    assert is_no_video_marker(np.zeros((0, 96, 96), np.uint8)) and not is_no_video_marker(np.zeros((1, 96, 96)))
    items = [("a", {"speech": np.zeros(640 * 5, np.float32), "video": np.ones((5, 88, 88), np.float32)}),
             ("gone", {"speech": np.zeros(640 * 7, np.float32), "video": np.zeros((0, 88, 88), np.float32)})]
    _, batch = AVCollateFn()(items)
    p = VideoPresence.from_batch(batch["video_lengths"], batch["video_missing"])
    assert p.lengths.tolist() == [5, 7] and p.absent.tolist() == [False, True]
    assert torch.equal(p.missing, VideoPresence.from_absent(B([5, 7]), B([False, True])).missing)
    assert p.missing[1].all() and not p.missing[0].any()


# ----------------------------------------------------------------------------- more missing frames
def test_union_of_the_batch_a_dropout_draw_and_a_simulation():
    batch = VideoPresence.from_batch(B([6, 4]), flags([[0], [3]], 6))
    draw = flags([[1, 2], [0]], 6)
    sim = flags([[2, 5], [1, 5]], 6)  # row 1: frame 5 is padding, never missing
    both = batch.union(draw).union(sim)
    assert both.missing.tolist() == flags([[0, 1, 2, 5], [0, 1, 3]], 6).tolist()
    assert torch.equal(both.missing, batch.union(sim).union(draw).missing)  # order does not matter
    assert torch.equal(both.union(draw).missing, both.missing)  # idempotent
    assert torch.equal(batch.union(draw).lengths, batch.lengths) and batch.missing.sum() == 2  # a new object
    assert batch.union(flags([[1, 2]], 3)[[0, 0]]).missing[:, 1:3].all()  # a narrower draw
    gone = batch.union(torch.ones(2, 6, dtype=torch.bool))
    assert gone.absent.all() and float(gone.missing_fraction()) == 1.0
    with pytest.raises(ValueError, match="union needs \\(B, T\\) flags for 2 samples"):
        batch.union(torch.ones(6, dtype=torch.bool))


def test_rows_is_a_sub_batch_trimmed_to_its_longest():
    p = VideoPresence.from_batch(B([6, 3, 4]), flags([[5], [0, 1, 2], [1]], 6))
    sub = p.rows(B([1, 2]))
    assert sub.lengths.tolist() == [3, 4] and sub.width == 4
    assert sub.missing.tolist() == [[True, True, True, False], [False, True, False, False]]
    assert sub.absent.tolist() == [True, False]


# ----------------------------------------------------------------------------- length reconciliation
def test_reconcile_keeps_flags_trims_and_marks_invented_frames_missing():
    video = VideoPresence.from_batch(B([4, 10, 8]), flags([[1], [2, 9], []], 10))
    # row 0: audio 9 > video 4 (repeat_last invents frames 4..8); row 1: video trimmed to 9;
    # row 2: audio 7 < video 8 (within tolerance, trimmed)
    r = video.reconcile(B([9, 9, 7]))
    assert r.lengths.tolist() == [9, 9, 7] and r.width == 9
    assert r.missing[0].tolist() == [False, True, False, False] + [True] * 5
    assert r.missing[1].tolist() == [False, False, True] + [False] * 6
    assert not r.missing[2].any() and r.present.sum(1).tolist() == [3, 8, 7]
    assert float(r.missing_fraction()) == pytest.approx(7 / 25)


def test_the_encoder_reports_the_reconciled_presence():
    torch.manual_seed(0)
    enc = AVConformerEncoder(40, video_input_size=16, output_size=16, attention_heads=2, linear_units=32,
                             num_fusion_blocks=1, num_shared_blocks=1, cnn_module_kernel=5,
                             on_length_mismatch="repeat_last").eval()
    feats, feats_lengths = torch.randn(2, 101, 40), B([101, 81])  # 24 and 19 frames after subsampling
    video = VideoPresence.from_batch(B([10, 20]), flags([[0, 3], [18, 19]], 20))
    with torch.no_grad():
        _, lens, hid = enc(feats, feats_lengths, torch.randn(2, 20, 16), B([10, 20]), presence=video)
        _, _, hid_tensors = enc(feats, feats_lengths, torch.randn(2, 20, 16), B([10, 20]), video.missing)
    assert torch.equal(hid["video_missing"], video.reconcile(lens).missing)
    assert torch.equal(hid_tensors["video_missing"], hid["video_missing"])  # a direct call reads the same
    assert hid["video_missing"][0, 10:24].all() and hid["video_missing"][1].tolist() == [False] * 18 + [True] + [False] * 5
    with pytest.raises(ValueError, match="not both"):
        enc(feats, feats_lengths, torch.randn(2, 20, 16), B([10, 20]), video.missing, presence=video)


def test_to_moves_both_tensors():
    p = VideoPresence.from_batch(B([2]), flags([[1]], 2)).to("cpu")
    assert p.lengths.device.type == p.missing.device.type == "cpu"


# ----------------------------------------------------------------------------- nobody else reads the flags
#: the only modules that interpret ``video_missing``: the type, and the collate that writes it
HOMES = {"data/presence.py", "data/collate.py"}
#: what any other module may do with a ``video_missing`` tensor: turn it into a VideoPresence
#: or hand it on, unchanged, to the model's own entry points
ALLOWED_CALLS = {"from_batch", "of_utterance", "VideoPresence", "batch_presence", "encoder_presence",
                 "forward", "distill"}


def _is_flags(node: ast.AST) -> bool:
    """``video_missing``, ``x["video_missing"]`` or ``x.get("video_missing")``, read."""
    if isinstance(node, ast.Name):
        return node.id == "video_missing" and isinstance(node.ctx, ast.Load)
    if isinstance(node, ast.Subscript):
        key = node.slice
        return isinstance(key, ast.Constant) and key.value == "video_missing" and isinstance(node.ctx, ast.Load)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == "video_missing"
    return False


def flag_readings(source: str, name: str = "<src>"):
    """(line, what) for every use of the flags other than the allowed ones."""
    tree = ast.parse(source, filename=name)
    parent = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if not _is_flags(node):
            continue
        up = parent[node]
        if isinstance(up, ast.keyword):
            up = parent[up]
        if isinstance(up, ast.Call) and node is not up.func:
            f = up.func
            callee = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if callee in ALLOWED_CALLS:
                continue
        if isinstance(up, ast.Compare) and all(isinstance(op, (ast.Is, ast.IsNot)) for op in up.ops):
            continue  # "was a mask given at all"
        yield node.lineno, ast.unparse(up)


def test_no_module_but_the_type_and_the_collate_reads_video_missing():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel not in HOMES:
            bad += [f"{rel}:{line}: {what}" for line, what in flag_readings(path.read_text(encoding="utf-8"), rel)]
    assert not bad, "read which frames exist through VideoPresence (espnet_avsr/data/presence.py):\n" + "\n".join(bad)


@pytest.mark.parametrize("snippet", [
    "def f(video_missing, t):\n    return video_missing[:, :t]",
    "def f(video_missing):\n    return video_missing.any(dim=1)",
    "def f(batch):\n    return ~batch['video_missing']",
    "def f(batch, sim):\n    return batch.get('video_missing') | sim",
    "def f(video_missing):\n    return torch.nonzero(video_missing)",
])
def test_the_check_sees_a_module_reading_the_flags(snippet):
    assert list(flag_readings(snippet))
    assert not list(flag_readings("def f(video_lengths, video_missing):\n"
                                  "    if video_missing is not None:\n"
                                  "        return VideoPresence.from_batch(video_lengths, video_missing)"))
