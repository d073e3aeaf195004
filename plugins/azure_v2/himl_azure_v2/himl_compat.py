"""hi-ml's ``submit_to_azure_if_needed``, with its argument names, on top of himl.

A hi-ml script keeps working with only its import changed::

    from himl_azure_v2 import submit_to_azure_if_needed

    run_info = submit_to_azure_if_needed(
        compute_cluster_name="gpu-cluster",
        input_datasets=["mnist"],
        default_datastore="mydatastore",
        output_datasets=["mnist_features"],
    )
    data_folder = run_info.input_datasets[0]

Run plainly it runs here (as a local himl run); with ``--azureml`` on its command
line (or ``submit_to_azureml=True``) it is submitted to AzureML and the
process exits; inside the AzureML job it returns the job's folders.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from himl_kernel.compute_common import write_run_recovery_file
from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_azure_v2.run import MlflowRun
    from himl_kernel.datasets import DatasetConfig
    from himl_kernel.job import JobSpec
    from himl_kernel.plugins import PluginHost
    from himl_kernel.runinfo import RunInfo
    from himl_kernel.sweep import Sweep

AZUREML_FLAG = "--azureml"
DatasetLike = Any  # a DatasetConfig, a dataset name, a folder, or a dict of DatasetConfig fields


@dataclass
class AzureRunInfo:
    """What hi-ml's ``submit_to_azure_if_needed`` returns, with the same attribute names.

    Attributes:
        input_datasets: one folder per input dataset (None where unavailable).
        output_datasets: one folder per output dataset.
        run: the run, with hi-ml's Run methods (``log``, ``log_list``, ``upload_file``, ``upload_folder``,
            ``id``, ``get_portal_url``...) on its MLflow run: the AzureML job's inside AzureML, the local
            run store's here (hi-ml gave None outside AzureML).
        is_running_in_azure_ml: whether this process is an AzureML job.
        output_folder: where files kept with the run go.
        logs_folder: where logs go.
        run_info: the kernel's RunInfo behind it.
    """

    input_datasets: list[Path | None]
    output_datasets: list[Path | None]
    run: MlflowRun | None
    is_running_in_azure_ml: bool
    output_folder: Path | None
    logs_folder: Path | None
    run_info: RunInfo | None = None
    mount_contexts: list[Any] = field(default_factory=list)


def _as_info(info: RunInfo) -> AzureRunInfo:
    from himl_azure_v2.run import MlflowRun

    return AzureRunInfo(
        input_datasets=list(info.input_datasets),
        output_datasets=list(info.output_datasets),
        run=MlflowRun.for_run_info(info) if info.run_id else None,
        is_running_in_azure_ml=info.backend == "azureml",
        output_folder=info.output_folder,
        logs_folder=info.logs_folder,
        run_info=info,
    )


def _duration(text: str) -> float | None:
    if not text:
        return None
    from himl_kernel.job import parse_duration

    return parse_duration(text)


def submit_to_azure_if_needed(
    compute_cluster_name: str = "",
    entry_script: str | Path | None = None,
    aml_workspace: Any = None,
    workspace_config_file: str | Path | None = None,
    ml_client: Any = None,
    snapshot_root_directory: str | Path | None = None,
    script_params: list[str] | None = None,
    conda_environment_file: str | Path | None = None,
    aml_environment_name: str = "",
    experiment_name: str | None = None,
    environment_variables: dict[str, str] | None = None,
    pip_extra_index_url: str = "",
    private_pip_wheel_path: str | Path | None = None,
    docker_base_image: str = "",
    docker_shm_size: str = "",
    ignored_folders: Sequence[str | Path] | None = None,
    default_datastore: str = "",
    input_datasets: Sequence[DatasetLike] | None = None,
    output_datasets: Sequence[DatasetLike] | None = None,
    num_nodes: int = 1,
    wait_for_completion: bool = False,
    wait_for_completion_show_output: bool = False,
    max_run_duration: str = "",
    submit_to_azureml: bool | None = None,
    tags: dict[str, str] | None = None,
    after_submission: Callable[..., None] | None = None,
    hyperdrive_config: Any = None,
    hyperparam_args: dict[str, Any] | None = None,
    strictly_aml_v1: bool = False,
    identity_based_auth: bool = False,
    pytorch_processes_per_node_v2: int | None = None,
    use_mpi_run_for_single_node_jobs: bool = True,
    display_name: str | None = None,
    *,
    pip_requirements_file: str | Path | None = None,
    processes_per_node: int = 1,
    sweep: Sweep | None = None,
    distribution: str = "auto",
    host: PluginHost | None = None,
    argv: list[str] | None = None,
) -> AzureRunInfo:
    """Submit this script to AzureML when asked (``--azureml``), else run it here; inside the job, describe it.

    The arguments are hi-ml's, in hi-ml's order: ``compute_cluster_name`` is
    the cluster, ``snapshot_root_directory`` the code folder (default: the
    current folder), ``default_datastore`` the datastore of datasets given by
    name, ``docker_shm_size`` the job's shared memory, ``max_run_duration`` a
    duration such as ``"2h"``. ``aml_workspace`` may be a
    :class:`~himl_azure_v2.workspace.Workspace`, ``ml_client`` an
    ``azure.ai.ml.MLClient`` (used as it is). ``aml_environment_name`` runs the
    job in a registered environment (``NAME`` or ``NAME:VERSION``) instead of one
    made from the conda file; ``pip_extra_index_url`` adds a pip index to the
    environment and ``private_pip_wheel_path`` a wheel, uploaded to the
    workspace's blob store. ``hyperparam_args`` is hi-ml's v2 sweep dict (see
    :func:`himl_kernel.sweep.sweep_from_hi_ml_args`). ``identity_based_auth``
    runs the job as the submitting user's identity. ``pytorch_processes_per_node_v2``
    makes a PyTorch-distributed job with that many processes per node; without it a
    job is MPI with one process per node, a one-node job too unless
    ``use_mpi_run_for_single_node_jobs=False``. ``after_submission`` receives the
    submitted job's :class:`~himl_kernel.job.Submission`, or, when it takes two
    arguments, hi-ml v2's ``(Job, MLClient)``.

    himl's own keywords follow: ``pip_requirements_file``, ``processes_per_node``,
    ``sweep``, ``distribution`` (``auto``, ``mpi``, ``pytorch``, ``none``), ``host``
    and ``argv``.
    """
    from himl_kernel.errors import install_one_line_excepthook

    install_one_line_excepthook()  # a hi-ml script that does not catch our errors ends with their one line
    if strictly_aml_v1:
        raise HimlError("strictly_aml_v1=True needs the AzureML SDK v1 plugin (himl[azure-v1]), not himl-azure-v2")
    if hyperdrive_config is not None:
        raise HimlError(
            "hyperdrive_config is an SDK v1 HyperDriveConfig; with SDK v2 give hyperparam_args "
            "(hi-ml's dict: parameter_sampling, sampling_algorithm, primary_metric, goal, max_total_trials)"
        )
    from himl_kernel.datasets import DatasetConfig
    from himl_kernel.plugins import build_host

    host = host or build_host()
    argv = sys.argv if argv is None else argv
    if host.detect_run() is not None or not _wants_azureml(argv, submit_to_azureml):
        if submit_to_azureml is False:
            argv[:] = [a for a in argv if a != AZUREML_FLAG]
        from himl_kernel.submit import submit_if_needed

        info = submit_if_needed(
            entry_script=entry_script,
            input_datasets=list(input_datasets or []),
            output_datasets=list(output_datasets or []),
            default_datastore=default_datastore,
            tags=tags,
            experiment=experiment_name or "",
            display_name=display_name or "",
            host=host,
            argv=argv,
        )
        return _as_info(info)

    if AZUREML_FLAG in argv:
        argv[:] = [a for a in argv if a != AZUREML_FLAG]
    inputs = [DatasetConfig.from_value(v, default_datastore) for v in input_datasets or []]
    outputs = [DatasetConfig.from_value(v, default_datastore) for v in output_datasets or []]
    if pytorch_processes_per_node_v2 is not None:
        if isinstance(pytorch_processes_per_node_v2, bool) or pytorch_processes_per_node_v2 < 1:
            raise HimlError(f"pytorch_processes_per_node_v2 must be at least 1, got {pytorch_processes_per_node_v2!r}")
        processes_per_node, distribution = pytorch_processes_per_node_v2, "pytorch"
    if hyperparam_args:
        if sweep is not None:
            raise HimlError("give either hyperparam_args (hi-ml's sweep dict) or sweep, not both")
        from himl_kernel.sweep import sweep_from_hi_ml_args

        sweep = sweep_from_hi_ml_args(dict(hyperparam_args))
    options: dict[str, Any] = {
        "mpi_single_node": bool(use_mpi_run_for_single_node_jobs),
        "identity_based_auth": bool(identity_based_auth),
    }
    if aml_environment_name:
        from himl_azure_v2.backend import named_environment_reference

        named_environment_reference(aml_environment_name)  # a bad name fails before anything is staged
        options["aml_environment"] = aml_environment_name
    if pip_extra_index_url:
        from himl_azure_v2.environment import check_index_url

        options["pip_extra_index_url"] = check_index_url(pip_extra_index_url)
    if private_pip_wheel_path is not None:
        from himl_azure_v2.environment import private_wheel

        options["private_wheel"] = str(private_wheel(private_pip_wheel_path))
    if ml_client is not None and aml_workspace is not None:
        raise HimlError("give either aml_workspace or ml_client, not both")
    job = build_job_spec(
        argv=argv,
        entry_script=entry_script,
        snapshot_root=snapshot_root_directory,
        script_params=script_params,
        conda_file=conda_environment_file,
        pip_requirements=pip_requirements_file,
        docker_image=docker_base_image,
        shm_size=docker_shm_size,
        cluster=compute_cluster_name,
        num_nodes=num_nodes,
        processes_per_node=processes_per_node,
        inputs=inputs,
        outputs=outputs,
        env_vars=environment_variables,
        tags=tags,
        experiment=experiment_name,
        display_name=display_name or "",
        sweep=sweep,
        max_run_duration_s=_duration(max_run_duration),
        wait=wait_for_completion,
        ignored_folders=ignored_folders,
        distribution=distribution,
        workspace_config=workspace_config_file,
        options=options,
    )
    from himl_azure_v2.backend import AzureMLBackend
    from himl_azure_v2.workspace import Workspace

    workspace = Workspace.from_client(ml_client) if ml_client is not None else aml_workspace
    backend = AzureMLBackend(workspace=workspace)
    submission = backend.submit(job, host)
    host.job_submitted(job, submission)
    print(f"himl: submitted to azureml: run {submission.run_id} {submission.url}", file=sys.stderr)
    write_run_recovery_file(submission.run_id)
    if after_submission is not None:
        _call_after_submission(after_submission, submission, backend)
    raise SystemExit(0 if submission.succeeded else (submission.exit_code or 1))


def _call_after_submission(callback: Callable[..., None], submission: Any, backend: Any) -> None:
    """hi-ml v2 calls ``after_submission(job, ml_client)``; a one-argument callback gets himl's Submission."""
    import inspect

    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: the one-argument form
        callback(submission)
        return
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters):
        client = backend.workspace_for_submitted().client
        callback(client.jobs.get(submission.run_id), client)
    else:
        callback(submission)


def _wants_azureml(argv: list[str], submit_to_azureml: bool | None) -> bool:
    if submit_to_azureml is not None:
        return submit_to_azureml
    return AZUREML_FLAG in argv[1:]


def build_job_spec(
    *,
    argv: list[str],
    entry_script: str | Path | None,
    snapshot_root: str | Path | None,
    script_params: list[str] | None,
    conda_file: str | Path | None,
    pip_requirements: str | Path | None,
    docker_image: str,
    shm_size: str,
    cluster: str,
    num_nodes: int,
    processes_per_node: int,
    inputs: list[DatasetConfig],
    outputs: list[DatasetConfig],
    env_vars: dict[str, str] | None,
    tags: dict[str, str] | None,
    experiment: str | None,
    display_name: str,
    sweep: Sweep | None,
    max_run_duration_s: float | None,
    wait: bool,
    ignored_folders: Sequence[str | Path] | None,
    distribution: str,
    workspace_config: str | Path | None,
    options: dict[str, Any] | None = None,
) -> JobSpec:
    """The JobSpec hi-ml's arguments describe."""
    from himl_kernel.job import Compute, Entry, Environment, JobSpec
    from himl_kernel.snapshot import Snapshot

    script = Path(entry_script or argv[0]).resolve()
    root = Path(snapshot_root or Path.cwd()).resolve()
    try:
        target = script.relative_to(root).as_posix()
    except ValueError:
        raise HimlError(f"entry script {str(script)!r} is not inside the snapshot root {str(root)!r}") from None
    ignores = [str(Path(p).as_posix()).rstrip("/") + "/" for p in ignored_folders or []]
    options = {**(options or {}), "distribution": distribution}
    if conda_file is None and pip_requirements is None and not options.get("aml_environment"):
        conda_file = find_environment_file(script, root)
    if workspace_config is not None:
        options["workspace_config"] = str(workspace_config)
    return JobSpec(
        entry=Entry("script", target, list(script_params) if script_params is not None else argv[1:]),
        snapshot=Snapshot(root, ignores),
        environment=Environment(
            conda_file=Path(conda_file) if conda_file else None,
            pip_requirements=Path(pip_requirements) if pip_requirements else None,
            docker_image=docker_image,
            shm_size=shm_size,
        ),
        compute=Compute("azureml", cluster, num_nodes, processes_per_node, options),
        input_datasets=inputs,
        output_datasets=outputs,
        env_vars=dict(environment_variables_or_empty(env_vars)),
        tags=dict(tags or {}),
        experiment=experiment or script.stem,
        display_name=display_name,
        sweep=sweep,
        max_run_duration_s=max_run_duration_s,
        wait_for_completion=wait,
    )


#: The conda file hi-ml looks for when a script names none.
CONDA_ENVIRONMENT_FILE = "environment.yml"


def find_environment_file(script: Path, root: Path) -> Path | None:
    """hi-ml's default conda file: ``environment.yml`` in the script's folder or a parent, up to the snapshot root."""
    for folder in (script.parent, *script.parent.parents):
        candidate = folder / CONDA_ENVIRONMENT_FILE
        if candidate.is_file():
            return candidate
        if folder == root:
            break
    return None


def environment_variables_or_empty(values: dict[str, str] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (values or {}).items()}


# --- hi-ml's datastore transfer functions, with hi-ml's signatures --------------------


def _workspace_arg(aml_workspace: Any) -> Any:
    """hi-ml's ``aml_workspace``: a himl Workspace, or an ``MLClient`` (made one)."""
    if aml_workspace is None:
        return None
    from himl_azure_v2.workspace import Workspace

    if isinstance(aml_workspace, Workspace):
        return aml_workspace
    if hasattr(aml_workspace, "jobs") and hasattr(aml_workspace, "workspace_name"):
        return Workspace.from_client(aml_workspace)
    raise HimlError(
        "aml_workspace must be a himl_azure_v2 Workspace or an azure.ai.ml MLClient, "
        f"not {type(aml_workspace).__name__}"
    )


def upload_to_datastore(
    datastore_name: str,
    local_data_folder: str | Path,
    remote_path: str | Path,
    aml_workspace: Any = None,
    workspace_config_path: str | Path | None = None,
    overwrite: bool = False,
    show_progress: bool = False,
) -> None:
    """hi-ml's ``upload_to_datastore``: the files below ``local_data_folder`` go to ``remote_path`` (the folder's
    own name is not kept: ``foo/bar/1.txt`` with ``remote_path="baz"`` becomes ``baz/1.txt``).

    Existing blobs are kept unless ``overwrite``; ``show_progress`` prints counts, rate and time left.
    """
    from himl_azure_v2 import transfer

    folder = Path(local_data_folder)
    if not folder.is_dir():
        raise HimlError(f"upload_to_datastore: local_data_folder {str(folder)!r} must be an existing folder")
    transfer.upload_to_datastore(
        folder,
        Path(remote_path).as_posix() if str(remote_path) not in ("", ".") else "",
        datastore=datastore_name,
        overwrite=overwrite,
        show_progress=show_progress,
        config_file=workspace_config_path,
        workspace=_workspace_arg(aml_workspace),
    )


def download_from_datastore(
    datastore_name: str,
    file_prefix: str,
    output_folder: str | Path,
    aml_workspace: Any = None,
    workspace_config_path: str | Path | None = None,
    overwrite: bool = False,
    show_progress: bool = False,
) -> None:
    """hi-ml's ``download_from_datastore``: the files at ``file_prefix`` keep their whole datastore path below
    ``output_folder`` (``foo/bar/1.txt`` for the prefix ``foo/bar`` lands in ``output_folder/foo/bar/1.txt``);
    a prefix that names one file downloads that file.

    Local files are kept unless ``overwrite``; ``show_progress`` prints counts, rate and time left.
    """
    from himl_azure_v2 import transfer

    transfer.download_from_datastore(
        str(file_prefix),
        Path(output_folder),
        datastore=datastore_name,
        overwrite=overwrite,
        show_progress=show_progress,
        config_file=workspace_config_path,
        workspace=_workspace_arg(aml_workspace),
        keep_prefix=True,
    )


# --- hi-ml's workspace and run helpers ---------------------------------------------------


def get_workspace(aml_workspace: Any = None, workspace_config_path: str | Path | None = None) -> Any:
    """hi-ml's ``get_workspace``: the given workspace, else the one ``workspace_config_path`` or a ``config.json``
    above the current folder (or the ``HIML_*`` variables) names, as a :class:`~himl_azure_v2.workspace.Workspace`."""
    given = _workspace_arg(aml_workspace)
    if given is not None:
        return given
    from himl_azure_v2.workspace import Workspace

    return Workspace.from_config(workspace_config_path)


def workspace_tracking_uri(workspace: Any) -> str:
    """The MLflow tracking URI of an AzureML workspace (where its jobs' metrics and files are)."""
    return str(workspace.client.workspaces.get(workspace.config.workspace_name).mlflow_tracking_uri)


def create_aml_run_object(
    experiment_name: str,
    run_name: str | None = None,
    workspace: Any = None,
    workspace_config_path: str | Path | None = None,
    snapshot_directory: str | Path | None = None,
) -> MlflowRun:
    """hi-ml's ``create_aml_run_object``: a new run in the workspace's experiment ``experiment_name``, for logging
    from outside a job (from a VM, a notebook). It is an MLflow run in the workspace's MLflow store; end it
    with ``complete()``. ``snapshot_directory`` (a v1 code snapshot) has no v2 counterpart and is refused."""
    if snapshot_directory is not None:
        raise HimlError("create_aml_run_object: snapshot_directory is an SDK v1 feature; SDK v2 runs carry no code")
    if not str(experiment_name).strip():
        raise HimlError("create_aml_run_object: experiment_name must not be empty")
    from himl_azure_v2.run import MlflowRun
    from himl_kernel.runstore import RunStore

    ws = get_workspace(workspace, workspace_config_path)
    store = RunStore(workspace_tracking_uri(ws))
    created = store.create_run(str(experiment_name), run_name or "", tags={"himl.created_by": "create_aml_run_object"})
    return MlflowRun(created.run_id, store, ws.studio_url(created.run_id))


_RUN_ID = re.compile(r"^[A-Za-z0-9_\-.]{1,256}$")


def aggregate_hyperdrive_metrics(
    child_run_arg_name: str,
    run_id: str | None = None,
    run: MlflowRun | None = None,
    keep_metrics: list[str] | None = None,
    aml_workspace: Any = None,
    workspace_config_path: str | Path | None = None,
) -> Any:
    """hi-ml's table of a sweep's child-run metrics, for SDK v2 sweeps (and himl's local sweeps).

    A pandas DataFrame with one column per child run, named by the value of its
    ``child_run_arg_name`` parameter, and one row per metric: its list of values
    in step order, or the value alone when it was logged once. ``run`` is the
    sweep's run object (``run_info.run``); ``run_id`` a sweep job's name, read
    from the workspace's MLflow store. ``keep_metrics`` keeps only those rows.
    """
    import importlib

    from himl_kernel.runstore import PARENT_TAG, RunStore

    pd: Any = importlib.import_module("pandas")  # mlflow's own dependency; untyped

    if (run is None) == (run_id is None):
        raise HimlError("aggregate_hyperdrive_metrics: give exactly one of run_id and run")
    if run is not None:
        store, parent = run._store, run.id
    else:
        assert run_id is not None
        if not _RUN_ID.match(run_id):
            raise HimlError(f"aggregate_hyperdrive_metrics: run_id {run_id!r} is not a run id")
        store, parent = RunStore(workspace_tracking_uri(get_workspace(aml_workspace, workspace_config_path))), run_id
    client = store.client
    try:
        experiment = client.get_run(parent).info.experiment_id
    except Exception:
        raise HimlError(f"aggregate_hyperdrive_metrics: run {parent!r} does not exist in {store.display_uri}") from None
    children = client.search_runs([experiment], filter_string=f"tags.`{PARENT_TAG}` = '{parent}'", max_results=10_000)
    if not children:
        raise HimlError(f"aggregate_hyperdrive_metrics: run {parent!r} has no child runs (is it a sweep?)")
    columns: dict[Any, dict[str, Any]] = {}
    for child in children:
        value = child.data.params.get(child_run_arg_name)
        if value is None:
            raise HimlError(
                f"aggregate_hyperdrive_metrics: child run {child.info.run_id} has no parameter {child_run_arg_name!r}; "
                f"it has {sorted(child.data.params) or '(none)'}"
            )
        key: Any = int(value) if value.lstrip("-").isdigit() else value
        metrics: dict[str, Any] = {}
        for name in sorted(child.data.metrics):
            if keep_metrics is not None and name not in keep_metrics:
                continue
            history = sorted(client.get_metric_history(child.info.run_id, name), key=lambda m: (m.step, m.timestamp))
            values = [m.value for m in history]
            metrics[name] = values[0] if len(values) == 1 else values
        columns[key] = metrics
    ordered = dict(sorted(columns.items(), key=lambda item: (isinstance(item[0], str), item[0])))
    return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in ordered.items()})


def run_context() -> Any:
    """hi-ml's ``RUN_CONTEXT``: the current run (inside an AzureML job, or a himl run here); outside any run,
    an offline run whose ``log`` prints the value, as azureml-core's offline run did."""
    from himl_azure_v2.run import MlflowRun, OfflineRun
    from himl_kernel.plugins import build_host

    info = build_host().detect_run()
    if info is None or not info.run_id:
        return OfflineRun()
    return MlflowRun.for_run_info(info)
