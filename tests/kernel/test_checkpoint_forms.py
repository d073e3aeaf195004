"""hi-ml's forms of src_checkpoint (RUN_ID, RUN_ID:best.ckpt, RUN_ID:outputs/...) and its CheckpointParser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from himl_kernel.checkpoints import CheckpointParser, hi_ml_run_candidates, resolve_checkpoint
from himl_kernel.container import Container
from himl_kernel.errors import HimlError
from himl_kernel.fields import config_text, parse_fields
from himl_kernel.runstore import RunStore


@pytest.fixture(scope="module")
def run_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A finished local run whose outputs hold checkpoints/last.ckpt, checkpoints/best.ckpt and top.ckpt.

    One store for the module (making a store takes seconds); the process's environment points at it.
    """
    root = tmp_path_factory.mktemp("checkpoint_forms")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HIML_HOME", str(root / "home"))
        patch.setenv("HIML_CACHE", str(root / "cache"))
        store = RunStore()
        stored = store.create_run("trained", "t")
        outputs, _ = store.folders(stored)
        (outputs / "checkpoints").mkdir()
        for name in ("checkpoints/last.ckpt", "checkpoints/best.ckpt", "top.ckpt"):
            (outputs / name).write_bytes(name.encode())
        store.finish(stored.run_id)
        yield stored.run_id, outputs


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("{run}", "checkpoints/last.ckpt"),  # the run id alone: its last checkpoint
        ("{run}:best.ckpt", "checkpoints/best.ckpt"),  # a bare file name: the run's checkpoints folder
        ("{run}:top.ckpt", "top.ckpt"),  # ... else the top of its outputs, as himl read it before
        ("{run}:outputs/checkpoints/best.ckpt", "checkpoints/best.ckpt"),  # counted from the run's top folder
        ("{run}:checkpoints/best.ckpt", "checkpoints/best.ckpt"),  # counted from its outputs
    ],
)
def test_every_hi_ml_run_form_names_the_file_hi_ml_would_load(
    run_files: tuple[str, Path], form: str, expected: str
) -> None:
    run_id, _ = run_files
    found = resolve_checkpoint(form.format(run=run_id))
    assert found.read_bytes() == expected.encode()


def test_a_missing_file_of_a_run_names_the_checkpoints_folder_first(run_files: tuple[str, Path]) -> None:
    run_id, _ = run_files
    with pytest.raises(HimlError) as info:
        resolve_checkpoint(f"{run_id}:epoch3.ckpt")
    assert str(info.value) == f"run {run_id} has no file 'outputs/checkpoints/epoch3.ckpt'"


def test_a_bare_word_that_is_neither_a_file_nor_a_run_is_one_line(run_files: tuple[str, Path]) -> None:
    with pytest.raises(HimlError) as info:
        resolve_checkpoint("no_such_run_42")
    message = str(info.value)
    assert message.startswith("checkpoint 'no_such_run_42' is not a file here, and no run of that id")
    assert "\n" not in message


def test_a_file_here_wins_over_a_run_id_and_a_file_name_is_never_a_run(himl_home: Path) -> None:
    (himl_home.parent / "model").write_bytes(b"weights")  # the tests' current folder
    assert resolve_checkpoint("model").read_bytes() == b"weights"
    with pytest.raises(HimlError, match=r"^checkpoint file 'gone.ckpt' does not exist"):
        resolve_checkpoint("gone.ckpt")


def test_candidates_of_each_form() -> None:
    assert hi_ml_run_candidates("abc123") == ["abc123:checkpoints/last.ckpt"]
    assert hi_ml_run_candidates("abc123:b.ckpt") == ["abc123:checkpoints/b.ckpt", "abc123:b.ckpt"]
    assert hi_ml_run_candidates("abc123:outputs/x/b.ckpt") == ["abc123:x/b.ckpt"]
    assert hi_ml_run_candidates("https://host/b.ckpt") == ["https://host/b.ckpt"]
    assert hi_ml_run_candidates("dir/b.ckpt") == ["dir/b.ckpt"]


def test_checkpoint_parser_tells_the_three_kinds_apart_and_downloads_into_pretrained_models(
    run_files: tuple[str, Path], tmp_path: Path
) -> None:
    run_id, outputs = run_files
    local = CheckpointParser(str(outputs / "top.ckpt"))
    assert local.is_local_file and not local.is_url and not local.is_aml_run_id and local.is_valid
    url = CheckpointParser("https://my_checkpoint_url.com/model.ckpt")
    assert url.is_url and not url.is_local_file and not url.is_aml_run_id
    for text in (f"{run_id}:best.ckpt", run_id):
        run = CheckpointParser(text)
        assert run.is_aml_run_id and not run.is_url and run.checkpoint == text
    assert CheckpointParser(run_id).get_or_download_checkpoint(tmp_path / "dl").read_bytes() == (
        b"checkpoints/last.ckpt"
    )
    assert not CheckpointParser() and not CheckpointParser().is_valid
    with pytest.raises(HimlError, match="no checkpoint was given"):
        CheckpointParser().get_or_download_checkpoint()


@pytest.mark.parametrize("bad", [":x", "abc:", "ftp://host/a.ckpt"])
def test_checkpoint_parser_refuses_a_malformed_reference(bad: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid checkpoint .*: expected a local file, an http\(s\) URL"):
        CheckpointParser(bad)


class WithCheckpoint(Container):
    """A container with a CheckpointParser field, as hi-ml's SSL and pathology containers have."""

    ssl_checkpoint: CheckpointParser = CheckpointParser()

    def run(self, run_info: object) -> None:
        raise AssertionError("not run in these tests")


def test_checkpoint_parser_is_a_container_field_on_the_command_line_and_in_config_yaml(tmp_path: Path) -> None:
    parsed = parse_fields(WithCheckpoint, ["--ssl_checkpoint", "3f2a9c:best.ckpt"])
    assert isinstance(parsed.ssl_checkpoint, CheckpointParser) and parsed.ssl_checkpoint.is_aml_run_id
    assert "ssl_checkpoint: 3f2a9c:best.ckpt" in config_text(parsed)
    config = tmp_path / "config.yaml"
    config.write_text(config_text(parsed), encoding="utf-8")
    again = parse_fields(WithCheckpoint, [], config_file=config)
    assert again.ssl_checkpoint == "3f2a9c:best.ckpt"
    assert parse_fields(WithCheckpoint, []).ssl_checkpoint == ""
    with pytest.raises(HimlError, match="ssl_checkpoint"):
        parse_fields(WithCheckpoint, ["--ssl_checkpoint", "ftp://x/y.ckpt"])


def test_checkpoint_parser_in_a_plain_pydantic_model() -> None:
    class Settings(BaseModel):
        weights: CheckpointParser = CheckpointParser()

    assert Settings(weights="https://host/w.ckpt").weights.is_url  # type: ignore[arg-type]
    assert Settings(weights="https://host/w.ckpt").model_dump() == {"weights": "https://host/w.ckpt"}  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="invalid checkpoint"):
        Settings(weights=":x")  # type: ignore[arg-type]
