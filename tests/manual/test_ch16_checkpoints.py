"""The manual's chapter 16 ("CHECKPOINT UTILS"), each example with only its import changed.

``health_ml.utils.checkpoint_utils`` is ``himl_kernel.checkpoints``. The manual's placeholders are given
real things to point at: a file at ``local/path/to/my_checkpoint/model.ckpt``, a server on this machine
for ``https://my_checkpoint_url.com/model.ckpt`` (nothing here reaches the internet), and a finished
run in the local run store for ``AzureML_run_id`` (the run-id forms work for local runs and AzureML jobs
alike). Its first example calls ``parser.get_or_download_checkpoint`` on a ``parser`` it never defines (a
slip in the manual): the test binds that name to the example's ``checkpoint_parser`` and says so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from himl_kernel.runstore import RunStore
from tests.kernel.test_checkpoints import Route, Server, _no_proxy, server  # noqa: F401 (fixtures)

MANUAL_IMPORT = "from health_ml.utils.checkpoint_utils import"


def as_himl(code: str) -> str:
    changed = code.replace(MANUAL_IMPORT, "from himl_kernel.checkpoints import")
    assert "health_ml" not in changed
    return changed


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HIML_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HIML_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_16_local_path(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = here / "local/path/to/my_checkpoint/model.ckpt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights")
    code = as_himl(
        """
from health_ml.utils.checkpoint_utils import CheckpointParser

download_dir = 'outputs/checkpoints'
checkpoint_parser = CheckpointParser(checkpoint='local/path/to/my_checkpoint/model.ckpt')
print('Checkpoint', checkpoint_parser.checkpoint, 'is a local file', checkpoint_parser.is_local_file)
local_file = parser.get_or_download_checkpoint(download_dir)
"""
    )
    namespace: dict[str, object] = {}
    first, rest = code.split("local_file =")
    exec(first, namespace)
    namespace["parser"] = namespace["checkpoint_parser"]  # the manual's slip: it means checkpoint_parser
    exec("local_file =" + rest, namespace)
    assert capsys.readouterr().out == "Checkpoint local/path/to/my_checkpoint/model.ckpt is a local file True\n"
    local_file = Path(str(namespace["local_file"]))
    assert local_file.resolve() == checkpoint.resolve()  # a local file is used where it is, not copied
    assert not (here / "outputs").exists()


def test_16_url(here: Path, server: Server, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    server.routes["/model.ckpt"] = Route(body=b"downloaded weights")
    code = as_himl(
        """
from health_ml.utils.checkpoint_utils import CheckpointParser, MODEL_WEIGHTS_DIR_NAME

download_dir = 'outputs/checkpoints'
checkpoint_parser = CheckpointParser('https://my_checkpoint_url.com/model.ckpt')
print('Checkpoint', checkpoint_parser.checkpoint, 'is a URL', checkpoint_parser.is_url)
# will download the checkpoint to download_dir/MODEL_WEIGHTS_DIR_NAME
path_to_ckpt = checkpoint_parser.get_or_download_checkpoint(download_dir)
"""
    ).replace("https://my_checkpoint_url.com", server.base)
    namespace: dict[str, object] = {}
    exec(code, namespace)
    assert capsys.readouterr().out == f"Checkpoint {server.base}/model.ckpt is a URL True\n"
    path = Path(str(namespace["path_to_ckpt"]))
    assert path.read_bytes() == b"downloaded weights"
    # below download_dir/MODEL_WEIGHTS_DIR_NAME, as the manual says; himl adds a folder per URL, so that two
    # URLs ending in the same file name do not overwrite each other
    weights = (here / "outputs/checkpoints" / str(namespace["MODEL_WEIGHTS_DIR_NAME"])).resolve()
    assert path.resolve().is_relative_to(weights) and path.name == "model.ckpt"
    assert server.count("/model.ckpt") == 1


def test_16_azureml_run_id(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = RunStore()  # one store for the three forms: making one takes seconds
    run = store.create_run("trained")
    outputs, _ = store.folders(run)
    (outputs / "checkpoints").mkdir()
    (outputs / "checkpoints" / "best.ckpt").write_bytes(b"best")
    (outputs / "checkpoints" / "last.ckpt").write_bytes(b"last")
    store.finish(run.run_id)
    example = as_himl(
        """
from health_ml.utils.checkpoint_utils import CheckpointParser

checkpoint_parser = CheckpointParser('AzureML_run_id:best.ckpt')
print('Checkpoint', checkpoint_parser.checkpoint, 'is a AML run', checkpoint_parser.is_aml_run_id)
path_azure_ml_ckpt = checkpoint_parser.get_or_download_checkpoint(download_dir)
"""
    )
    for form, expected in (
        ("{run}:best.ckpt", b"best"),  # the manual's example: the default checkpoints folder
        ("{run}", b"last"),  # no file name: the latest checkpoint, last.ckpt
        ("{run}:outputs/checkpoints/best.ckpt", b"best"),  # a custom path in the run
    ):
        reference = form.format(run=run.run_id)
        code = example.replace("'AzureML_run_id:best.ckpt'", repr(reference))
        namespace: dict[str, object] = {"download_dir": "outputs/checkpoints"}  # set by the manual's earlier example
        exec(code, namespace)
        assert capsys.readouterr().out == f"Checkpoint {reference} is a AML run True\n"
        assert Path(str(namespace["path_azure_ml_ckpt"])).read_bytes() == expected, form
