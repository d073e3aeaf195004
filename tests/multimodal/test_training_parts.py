"""The pieces of ImageTextContrastive: pairs tables and folders, the vocabulary, the losses, the saved models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from himl_multimodal.synthetic import REPORTS, write_left_right_pairs
from himl_multimodal.training.data import build_vocabulary, read_pairs, split_pairs
from himl_multimodal.training.module import contrastive_loss, local_alignment, same_report_targets

from himl_kernel.errors import HimlError


def test_pairs_from_table_and_folder(tmp_path: Path) -> None:
    table = write_left_right_pairs(tmp_path / "d", 6, size=32)
    pairs = read_pairs(table)
    assert len(pairs) == 6 and pairs[0].report == REPORTS["left"] and pairs[1].report == REPORTS["right"]
    for pair in pairs[:3]:
        pair.image.with_suffix(".txt").write_text(pair.report + "\n")
    assert [p.image.name for p in read_pairs(tmp_path / "d")] == sorted(p.image.name for p in pairs[:3])
    train, val = split_pairs(pairs, 0.3, seed=1)
    assert len(val) == 2 and len(train) == 4 and not set(train) & set(val)


def test_bad_pairs_are_one_line(tmp_path: Path) -> None:
    table = write_left_right_pairs(tmp_path / "d", 2, size=32)
    (tmp_path / "empty").mkdir()
    bad = {
        "no 'report' column": "image\nleft_0000.png\n",
        "is not an existing image": "image,report\n../../secret.txt,opacity\nleft_0000.png,x\n",
        "empty report": "image,report\nleft_0000.png,\n",
        "needs at least 2": "image,report\nleft_0000.png,opacity\n",
    }
    for expected, text in bad.items():
        table.write_text(text)
        with pytest.raises(HimlError, match=expected):
            read_pairs(table)
    with pytest.raises(HimlError, match="no image with a non-empty"):
        read_pairs(tmp_path / "empty")
    with pytest.raises(HimlError, match="fewer than 2 for training"):
        split_pairs(read_pairs(write_left_right_pairs(tmp_path / "e", 3, size=32)), 0.5, seed=0)


def test_vocabulary_holds_every_report_word(tmp_path: Path) -> None:
    from transformers import BertTokenizer

    vocab = build_vocabulary(["Opacity in the LEFT lung.", "no effusion"], tmp_path)
    tokenizer = BertTokenizer(str(vocab))
    ids = tokenizer("opacity in the left lung. no effusion").input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.convert_ids_to_tokens(ids[1:3]) == ["opacity", "in"]


def test_identical_reports_share_targets_and_aligned_pairs_lower_the_loss() -> None:
    targets = same_report_targets(["a", "b", "a"], torch.device("cpu"))
    assert torch.allclose(targets, torch.tensor([[0.5, 0, 0.5], [0, 1, 0], [0.5, 0, 0.5]]))
    text = torch.eye(3, 8)
    aligned = contrastive_loss(text.clone(), text, torch.tensor(10.0), ["a", "b", "c"])
    shuffled = contrastive_loss(text[[1, 2, 0]], text, torch.tensor(10.0), ["a", "b", "c"])
    assert aligned < shuffled


def test_local_alignment_pools_the_patches_that_match_each_report() -> None:
    patches = torch.zeros(1, 4, 2, 2)
    patches[0, 0, 0, 0] = 1.0  # the first patch points along channel 0, the last along channel 1
    patches[0, 1, 1, 1] = 1.0
    texts = torch.eye(2, 4)
    pooled = local_alignment(patches + 1e-3, texts, temperature=0.01)
    assert pooled.shape == (2, 1, 4)
    assert pooled[0, 0].argmax().item() == 0 and pooled[1, 0].argmax().item() == 1
