"""The plugin's registrations: the command and the container are listed, and their targets load."""

from __future__ import annotations

import pytest

from himl_kernel.cli.main import main


def test_models_lists_the_training_container(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("ImageTextContrastive"))
    assert "[multimodal]" in line


def test_multimodal_help_names_the_three_actions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["multimodal", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert all(action in out for action in ("ground", "zero-shot", "embed"))


def test_container_fields_have_the_published_defaults() -> None:
    from himl_multimodal.training.container import ImageTextContrastive

    container = ImageTextContrastive()
    assert (container.image_backbone, container.joint_feature_size) == ("resnet50", 128)
    assert (container.resize, container.crop_size) == (512, 480)
