"""The manual's chapter 4 ("DATASETS"), each example with only its import changed.

The manual writes ``submit_to_azure_if_needed(..., input_datasets=...)``; its
``...`` stands for the script's other arguments, here
``compute_cluster_name="gpu-nc24"`` (and a conda file found beside the script).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from azure.ai.ml.entities import AccountKeyConfiguration, AzureBlobDatastore

from tests.azure_v2.control_plane import AZURITE_ACCOUNT, AZURITE_KEY, BLOB_CONTAINER, ControlPlane
from tests.conftest import run_script
from tests.manual.conftest import as_himl

ELLIPSIS = 'compute_cluster_name="gpu-nc24"'

EX_4_2 = """
from health_azure import submit_to_azure_if_needed
run_info = submit_to_azure_if_needed(...,
                                     input_datasets=["my_folder"],
                                     default_datastore="my_datastore",
                                     )
input_folder = run_info.input_datasets[0]
"""
EX_4_2_1 = """
from health_azure import submit_to_azure_if_needed
run_info = submit_to_azure_if_needed(...,
                                     input_datasets=["my_folder"],
                                     output_datasets=["new_dataset"],
                                     default_datastore="my_datastore",
                                     )
input_folder = run_info.input_datasets[0]
output_folder = run_info.output_datasets[0]
"""
EX_4_2_2 = """
from health_azure import DatasetConfig, submit_to_azure_if_needed
input_dataset = DatasetConfig(name="my_folder", datastore="my_datastore", use_mounting=True)
output_dataset = DatasetConfig(name="new_dataset", datastore="my_datastore", use_mounting=True)
run_info = submit_to_azure_if_needed(...,
                                     input_datasets=[input_dataset],
                                     output_datasets=[output_dataset],
                                     )
input_folder = run_info.input_datasets[0]
output_folder = run_info.output_datasets[0]
"""
EX_4_2_3 = """
from pathlib import Path
from health_azure import DatasetConfig, submit_to_azure_if_needed
input_dataset = DatasetConfig(name="my_folder",
                              datastore="my_datastore",
                              local_folder=Path("/datasets/my_folder_local"),
                              )
run_info = submit_to_azure_if_needed(...,
                                     input_datasets=[input_dataset],
                                     )
input_folder = run_info.input_datasets[0]
"""
EX_4_2_4 = """
from health_azure import DatasetConfig, submit_to_azure_if_needed
input_dataset = DatasetConfig(name="my_folder",
                              datastore="my_datastore",
                              use_mounting=True,
                              target_folder="/tmp/mnist",
                              )
run_info = submit_to_azure_if_needed(...,
                                     input_datasets=[input_dataset],
                                     )
# Input_folder will now be "/tmp/mnist"
input_folder = run_info.input_datasets[0]
"""
EX_4_2_5 = """
from health_azure import DatasetConfig, submit_to_azure_if_needed
output_dataset = DatasetConfig(name="my_folder",
                               datastore="my_datastore",
                               overwrite_existing=False,
                               )
# fails if output dataset already exists:
run_info = submit_to_azure_if_needed(...,
                                     output_datasets=[output_dataset],
                                     strictly_aml_v1=True,
                                     )
"""
EX_4_2_6 = """
from health_azure import DatasetConfig, submit_to_azure_if_needed
input_dataset = DatasetConfig(name="my_folder",
                              datastore="my_datastore",
                              version=7,
        )
run_info = submit_to_azure_if_needed(...,
                                     input_datasets=[input_dataset],
                                     )
input_folder = run_info.input_datasets[0]
"""


def _script(folder: Path, example: str, **paths: str) -> Path:
    code = as_himl(example).replace("...", ELLIPSIS)
    for old, new in paths.items():
        code = code.replace(old, new)
    script = folder / "uses_data.py"
    script.write_text(code + "\nprint('input folder:', input_folder)\n")
    return script


@pytest.fixture
def ws(workspace_dir: Path, control_plane: ControlPlane) -> Path:
    control_plane.datastores.append(
        AzureBlobDatastore(
            name="my_datastore",
            account_name=AZURITE_ACCOUNT,
            container_name=BLOB_CONTAINER,
            credentials=AccountKeyConfiguration(account_key=AZURITE_KEY),
        )
    )
    (workspace_dir / "environment.yml").write_text("name: t\ndependencies:\n  - python=3.10\n")
    return workspace_dir


def _submitted(ws: Path, plane: ControlPlane, example: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    assert run_script(_script(ws, example), "--azureml", monkeypatch=monkeypatch) == 0
    return plane.submitted[-1].rest["properties"]


def test_4_2_a_folder_by_name_becomes_a_dataset_and_a_job_input(
    ws: Path, control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    rest = _submitted(ws, control_plane, EX_4_2, monkeypatch)
    # "If there is no dataset of that name, it will create one from all the files in blob storage in folder my_folder"
    assert [(d["name"], d["path"]) for d in control_plane.created_data] == [
        ("my_folder", "azureml://datastores/my_datastore/paths/my_folder/")
    ]
    # "it will download the dataset my_folder to a temporary folder"
    assert rest["inputs"] == {
        "INPUT_0": {"uri": "azureml:my_folder@latest", "mode": "Download", "jobInputType": "uri_folder"}
    }


def test_4_2_1_and_4_2_2_outputs_and_mounting(ws: Path, control_plane: ControlPlane, monkeypatch) -> None:
    uploaded = _submitted(ws, control_plane, EX_4_2_1, monkeypatch)
    assert uploaded["outputs"]["OUTPUT_0"]["uri"] == "azureml://datastores/my_datastore/paths/new_dataset/"
    assert "new_dataset" in [d["name"] for d in control_plane.created_data]  # "registered as a dataset"
    mounted = _submitted(ws, control_plane, EX_4_2_2, monkeypatch)
    assert mounted["inputs"]["INPUT_0"]["mode"] == "ReadOnlyMount"
    assert mounted["outputs"]["OUTPUT_0"]["mode"] == "ReadWriteMount"


def test_4_2_4_target_folder_and_4_2_6_version(ws: Path, control_plane: ControlPlane, monkeypatch) -> None:
    fixed = _submitted(ws, control_plane, EX_4_2_4, monkeypatch)
    assert json.loads(fixed["environmentVariables"]["HIML_TARGET_FOLDERS"]) == {"INPUT_0": "/tmp/mnist"}
    pinned = _submitted(ws, control_plane, EX_4_2_6, monkeypatch)
    assert pinned["inputs"]["INPUT_0"]["uri"] == "azureml:my_folder:7"
    assert ("my_folder", "7") in [(d["name"], d["version"]) for d in control_plane.created_data]


def test_4_2_5_overwrite_existing_is_sdk_v1_and_refused_in_one_line(
    ws: Path, control_plane: ControlPlane, monkeypatch
) -> None:
    from himl_kernel.errors import HimlError

    with pytest.raises(HimlError) as refused:  # uncaught in a script, the excepthook prints it as one line
        run_script(_script(ws, EX_4_2_5), "--azureml", monkeypatch=monkeypatch)
    assert str(refused.value) == (
        "strictly_aml_v1=True needs the AzureML SDK v1 plugin (himl[azure-v1]), not himl-azure-v2"
    )
    assert control_plane.submitted == []


@pytest.mark.slow  # a local run records itself in a new MLflow store (~18 s on a loaded machine)
def test_4_2_3_locally_the_local_folder_is_used(
    himl_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    local = tmp_path / "my_folder_local"
    local.mkdir()
    script = _script(tmp_path, EX_4_2_3, **{"/datasets/my_folder_local": str(local)})
    assert run_script(script, monkeypatch=monkeypatch) == 0
    assert f"input folder: {local}" in capsys.readouterr().out
