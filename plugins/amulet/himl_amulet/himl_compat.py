"""hi-ml's Amulet helpers (``health_azure.amulet``), with their names, on top of himl.

A trainer script written for hi-ml's Amulet example keeps working with its
import changed to ``from himl_amulet.himl_compat import ...``:

- ``get_amulet_output_dir()``: ``$AMLT_OUTPUT_DIR``, the folder ``amlt results`` downloads;
- ``get_amulet_data_dir()``: where the storage entry ``data`` is mounted (``$AZUREML_DATAREFERENCE_data``);
- ``get_amulet_aml_working_dir()``: the code folder (``$SNAPSHOT_DIR``, or ``$AZ_BATCHAI_JOB_WORK_DIR``
  in a multi-node job), whose ``outputs`` AzureML keeps;
- ``is_amulet_job()``, ``prepare_amulet_job()`` (removes ``RANK``, which makes Lightning take every
  process for rank zero), and ``set_environment_variables_for_multi_node()`` (``MASTER_ADDR``,
  ``MASTER_PORT`` and ``NODE_RANK`` from what AzureML's MPI launcher sets), with the rank helpers
  ``is_global_rank_zero`` / ``is_local_rank_zero``.

Each reads the process environment when called; nothing happens at import.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from himl_amulet.injob import (
    ENV_BATCHAI_DIR,
    ENV_DATA_REFERENCE,
    ENV_OUTPUT_DIR,
    ENV_PROJECT_NAME,
    ENV_RANK,
    ENV_SNAPSHOT_DIR,
)
from himl_amulet.injob import is_amulet_job as _is_amulet_environ
from himl_amulet.injob import working_dir as _working_dir
from himl_kernel.distributed import is_global_rank_zero, ranks
from himl_kernel.errors import HimlError

# hi-ml's names for the variables Amulet sets.
ENV_AMLT_PROJECT_NAME = ENV_PROJECT_NAME
ENV_AMLT_INPUT_OUTPUT = "AZURE_ML_INPUT_OUTPUT"
ENV_AMLT_OUTPUT_DIR = ENV_OUTPUT_DIR
ENV_AMLT_SNAPSHOT_DIR = ENV_SNAPSHOT_DIR
ENV_AMLT_AZ_BATCHAI_DIR = ENV_BATCHAI_DIR
ENV_AMLT_DATAREFERENCE_DATA = ENV_DATA_REFERENCE
ENV_AMLT_DATAREFERENCE_OUTPUT = "AZUREML_DATAREFERENCE_output"
#: Where AzureML's MPI launcher names the first node: ``host:port``, or the host alone.
ENV_BATCH_MASTER_NODE = "AZ_BATCH_MASTER_NODE"
ENV_BATCHAI_MPI_MASTER_NODE = "AZ_BATCHAI_MPI_MASTER_NODE"
ENV_MASTER_IP = "MASTER_IP"
#: The port torch.distributed meets on when the launcher names none (hi-ml's choice).
DEFAULT_MASTER_PORT = "6105"

__all__ = [
    "ENV_AMLT_AZ_BATCHAI_DIR",
    "ENV_AMLT_DATAREFERENCE_DATA",
    "ENV_AMLT_DATAREFERENCE_OUTPUT",
    "ENV_AMLT_INPUT_OUTPUT",
    "ENV_AMLT_OUTPUT_DIR",
    "ENV_AMLT_PROJECT_NAME",
    "ENV_AMLT_SNAPSHOT_DIR",
    "get_amulet_aml_working_dir",
    "get_amulet_data_dir",
    "get_amulet_output_dir",
    "is_amulet_job",
    "is_global_rank_zero",
    "is_local_rank_zero",
    "prepare_amulet_job",
    "set_environment_variables_for_multi_node",
]


def _folder(key: str) -> Path | None:
    value = os.environ.get(key, "").strip()
    return Path(value) if value else None


def get_amulet_output_dir() -> Path | None:
    """The Amulet job's output folder (``$AMLT_OUTPUT_DIR``), or None outside one."""
    return _folder(ENV_AMLT_OUTPUT_DIR)


def get_amulet_data_dir() -> Path | None:
    """Where the datasets' container is mounted; a dataset is a subfolder of it. None without a data mount."""
    return _folder(ENV_AMLT_DATAREFERENCE_DATA)


def get_amulet_aml_working_dir() -> Path | None:
    """The folder AzureML put the job's code in, or None outside an Amulet job."""
    return _working_dir(os.environ)


def is_amulet_job() -> bool:
    """Whether this process runs in an Amulet job (himl's marker, or Amulet's own variables and code folder)."""
    return _is_amulet_environ(os.environ)


def prepare_amulet_job() -> None:
    """Remove ``RANK``, which Amulet sets: Lightning would otherwise take each process for rank zero."""
    os.environ.pop(ENV_RANK, None)


def is_local_rank_zero() -> bool:
    """Whether this process is the first on its machine (the one that prepares the machine's data)."""
    return ranks().is_local_zero


def set_environment_variables_for_multi_node() -> None:
    """Set ``MASTER_ADDR``, ``MASTER_PORT`` and ``NODE_RANK`` for torch.distributed from AzureML's MPI variables.

    A job none of them describes is taken for one node, and says so.
    """
    env = os.environ
    master = env.get(ENV_BATCH_MASTER_NODE, "").strip()
    mpi_master = env.get(ENV_BATCHAI_MPI_MASTER_NODE, "").strip()
    if master:
        address, colon, port = master.partition(":")
        if not address or (colon and not port.isdigit()):
            raise HimlError(f"{ENV_BATCH_MASTER_NODE}={master!r} is not HOST:PORT")
        env["MASTER_ADDR"] = address
        if port:
            env["MASTER_PORT"] = port
    elif mpi_master and mpi_master != "localhost":
        env["MASTER_ADDR"] = mpi_master
    elif env.get(ENV_MASTER_IP, "").strip():
        env["MASTER_ADDR"] = env[ENV_MASTER_IP].strip()
    else:
        print("himl: no first-node address in the environment: taking this for a one-node job", file=sys.stderr)
        return
    env.setdefault("MASTER_PORT", DEFAULT_MASTER_PORT)
    node_rank = env.get("OMPI_COMM_WORLD_RANK", "").strip()
    if node_rank:
        env["NODE_RANK"] = node_rank
