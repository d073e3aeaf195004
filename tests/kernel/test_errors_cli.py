"""Bad input gives one line on stderr, a non-zero exit, and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import run_himl


def _one_line_error(tmp_path: Path, *args: str) -> str:
    home = tmp_path / "home"
    done = run_himl(*args, cwd=tmp_path, env={"HIML_HOME": str(home), "HIML_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("himl: error: ")
    return lines[0]


def test_unknown_model_suggests_the_closest(tmp_path: Path) -> None:
    line = _one_line_error(tmp_path, "run", "--model", "HeloWorld")
    assert "unknown model 'HeloWorld'" in line and "did you mean 'HelloWorld'" in line


def test_unknown_backend_lists_the_known_ones(tmp_path: Path) -> None:
    line = _one_line_error(tmp_path, "run", "--model", "PlainHelloWorld", "--compute", "azurml")
    assert "unknown compute backend 'azurml'" in line and "local" in line.split("known: ")[1]  # and installed plugins
    assert not (tmp_path / "home").exists()


def test_missing_dataset_folder(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("print('never runs')\n")
    line = _one_line_error(tmp_path, "submit", str(script), "--input-dataset", str(tmp_path / "absent"))
    assert f"local_folder '{tmp_path / 'absent'}' does not exist" in line


@pytest.mark.parametrize("reference", ["abc:", ":last.ckpt", "ftp://host/x.ckpt", "   "])
def test_malformed_checkpoint_reference(tmp_path: Path, reference: str) -> None:
    line = _one_line_error(tmp_path, "checkpoint", reference)
    assert "malformed checkpoint reference" in line


def test_missing_checkpoint_file(tmp_path: Path) -> None:
    line = _one_line_error(tmp_path, "checkpoint", str(tmp_path / "nope.ckpt"))
    assert "does not exist" in line


def test_unknown_run_id(tmp_path: Path) -> None:
    line = _one_line_error(tmp_path, "runs", "show", "0f0f0f0f")
    assert "unknown run id '0f0f0f0f'" in line


def test_unknown_field_in_yaml_config(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("max_epochs: 2\nmax_epoch: 3\n")
    line = _one_line_error(tmp_path, "run", "--model", "PlainHelloWorld", "--config", str(config))
    assert "unknown field 'max_epoch'" in line and "max_epochs" in line


def test_unknown_model_field_on_the_command_line(tmp_path: Path) -> None:
    line = _one_line_error(tmp_path, "run", "--model", "PlainHelloWorld", "--epochs", "3")
    assert "unrecognized arguments: --epochs 3" in line


def test_bad_field_value(tmp_path: Path) -> None:
    line = _one_line_error(tmp_path, "run", "--model", "PlainHelloWorld", "--max_epochs", "many")
    assert "max_epochs" in line and "'many'" in line


def test_unknown_command(tmp_path: Path) -> None:
    line = _one_line_error(tmp_path, "rn")
    assert "unknown command 'rn'" in line and "did you mean 'run'" in line


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    done = run_himl("--verbose", "run", "--model", "HeloWorld", cwd=tmp_path, env={"HIML_HOME": str(tmp_path / "h")})
    assert done.returncode == 2
    assert "Traceback" in done.stderr and "UnknownNameError" in done.stderr
