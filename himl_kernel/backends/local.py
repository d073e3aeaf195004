"""The ``local`` compute backend: every job runs on this machine.

Each run is an MLflow run in the run store, with its own outputs and logs
folders (the run's artifacts). A sweep becomes a parent run with one child run
per trial; trials run one after another, or ``max_parallel`` at once, each in
its own process. A single container job runs in this process (no second
Python start-up); scripts and modules always run in a subprocess whose output
is shown here and kept in ``logs/stdout.txt``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from himl_kernel.dataset_prep import prepare_datasets
from himl_kernel.job import Submission
from himl_kernel.processes import die_with_parent
from himl_kernel.redact import mask_data, mask_secrets
from himl_kernel.runinfo import RunInfo
from himl_kernel.runstore import RunStore, StoredRun
from himl_kernel.sweep import trial_arguments

if TYPE_CHECKING:
    from himl_kernel.job import JobSpec
    from himl_kernel.plugins import PluginHost

BACKEND = "local"


@dataclass
class _Planned:
    index: int
    trial: dict[str, Any] | None
    info: RunInfo
    args: list[str] = field(default_factory=list)
    status: str = "RUNNING"
    exit_code: int = 0


class LocalBackend:
    """Runs jobs and sweeps here, recording each run in the run store."""

    def __init__(self, store: RunStore | None = None, out: IO[str] | None = None) -> None:
        self._store = store
        self.out = out if out is not None else sys.stdout
        self._print_lock = threading.Lock()

    @property
    def store(self) -> RunStore:
        if self._store is None:
            self._store = RunStore()
        return self._store

    # -- dry run ---------------------------------------------------------------
    def render(self, job: JobSpec, host: PluginHost) -> str:
        import yaml

        trials: list[dict[str, Any] | None] = list(job.sweep.trials()) if job.sweep else [None]
        commands = []
        for trial in trials:
            args = trial_arguments(trial) if trial else []
            inline = job.entry.kind == "container" and not self._parallel(job)
            commands.append(
                {
                    "trial": trial,
                    "runs": "in this process" if inline else "in a subprocess",
                    "command": shlex.join(job.entry.command() + args),
                }
            )
        files, size = job.snapshot.size()
        document = {
            "backend": BACKEND,
            "run_store": self.store.tracking_uri,
            "snapshot_files": files,
            "snapshot_bytes": size,
            "runs": commands,
            "job": job.to_dict(),
        }
        return yaml.safe_dump(mask_data(document), sort_keys=False)

    # -- submission --------------------------------------------------------------
    @staticmethod
    def _parallel(job: JobSpec) -> bool:
        return job.sweep is not None and (job.sweep.max_parallel or 1) > 1

    def _say(self, message: str) -> None:
        with self._print_lock:
            print(f"himl: {mask_secrets(message)}", file=self.out, flush=True)

    def submit(self, job: JobSpec, host: PluginHost) -> Submission:
        # Datasets first: a missing folder fails before any run is created.
        inputs = prepare_datasets(host, job.input_datasets, role="input")
        outputs = prepare_datasets(host, job.output_datasets, role="output")
        store = self.store
        base_tags = {
            **job.tags,
            "himl.backend": BACKEND,
            "himl.entry": f"{job.entry.kind}:{job.entry.target}",
            "himl.command": shlex.join(job.entry.command()[1:]),
        }
        name = job.display_name or job.entry.target
        resume = bool(job.compute.options.get("resume", True))
        job_key = _resume_key(job.experiment, job.entry.kind, job.entry.target, job.entry.args)
        parent_id = ""
        if job.sweep is not None:
            parent = self._resumable(job.experiment, job_key) if resume else None
            if parent is None:
                parent = store.create_run(
                    job.experiment,
                    name,
                    tags={**base_tags, **_owner_tags(job_key), "himl.sweep": json.dumps(job.sweep.to_dict())},
                    params={"sweep_trials": len(job.sweep.trials())},
                )
            parent_id = parent.run_id
            self._say(f"sweep {parent_id} in experiment {job.experiment!r}: {len(job.sweep.trials())} trials")

        planned: list[_Planned] = []
        trials: list[dict[str, Any] | None] = list(job.sweep.trials()) if job.sweep else [None]
        for index, trial in enumerate(trials):
            run_name = f"{name} #{index}" if trial is not None else name
            key = _resume_key(job_key, index, trial) if trial is not None else job_key
            stored = self._resumable(job.experiment, key, finished_too=bool(parent_id)) if resume else None
            if stored is None:
                stored = store.create_run(
                    job.experiment,
                    run_name,
                    parent_run_id=parent_id,
                    tags={**base_tags, **_owner_tags(key), **({"himl.trial": str(index)} if trial is not None else {})},
                    params=trial or None,
                )
            out_dir, logs_dir = store.folders(stored)
            info = RunInfo(
                run_id=stored.run_id,
                backend=BACKEND,
                output_folder=out_dir,
                logs_folder=logs_dir,
                input_datasets=list(inputs),
                output_datasets=list(outputs),
                parent_run_id=parent_id,
                is_remote=False,
                tracking_uri=store.tracking_uri,
            )
            plan = _Planned(index, trial, info, trial_arguments(trial) if trial else [])
            if stored.status == "FINISHED":  # a resumed sweep keeps the trials that had finished
                plan.status = "FINISHED"
            planned.append(plan)

        try:
            if self._parallel(job):
                assert job.sweep is not None
                todo = [p for p in planned if p.status == "RUNNING"]
                with ThreadPoolExecutor(max_workers=job.sweep.max_parallel or 1) as pool:
                    list(pool.map(lambda p: self._execute(job, host, p, prefix=f"[{p.index}] "), todo))
            else:
                for plan in planned:
                    if plan.status == "RUNNING":
                        self._execute(job, host, plan, prefix="")
        except KeyboardInterrupt:
            for plan in planned:
                if plan.status == "RUNNING":
                    plan.status, plan.exit_code = "KILLED", 130
                    store.finish(plan.info.run_id, "KILLED")
            if parent_id:
                store.finish(parent_id, "KILLED")
            raise

        failed = [p for p in planned if p.status != "FINISHED"]
        exit_code = next((p.exit_code for p in failed), 0)
        if parent_id:
            store.finish(parent_id, "FAILED" if failed else "FINISHED")
            self._say(
                f"sweep {parent_id} {'FAILED' if failed else 'FINISHED'}: "
                f"{len(planned) - len(failed)} of {len(planned)} trials finished"
            )
        run_id = parent_id or planned[0].info.run_id
        return Submission(
            backend=BACKEND,
            run_id=run_id,
            url=str(planned[0].info.output_folder.parent) if not parent_id else "",
            status="FAILED" if failed else "FINISHED",
            child_run_ids=[p.info.run_id for p in planned] if parent_id else [],
            exit_code=exit_code,
        )

    def _resumable(self, experiment: str, key: str, finished_too: bool = False) -> StoredRun | None:
        """A run of this same job whose process died (killed, machine restarted), to carry on with.

        Low-priority machines get preempted; rerunning the same command then
        continues the same run, in the same outputs folder, where a training
        loop finds its recovery checkpoints.
        """
        store = self.store
        if store.client.get_experiment_by_name(experiment) is None:
            return None
        wanted = ("RUNNING", "FINISHED") if finished_too else ("RUNNING",)
        candidates = store.list_runs(experiment, max_results=20, filter_string=f"tags.`{RESUME_TAG}` = '{key}'")
        for run in candidates:
            if run.status not in wanted:
                continue
            if run.status == "FINISHED":
                return run
            if run.tags.get(HOST_TAG) == socket.gethostname() and not _alive(int(run.tags.get(PID_TAG, "0") or 0)):
                store.set_tags(run.run_id, {PID_TAG: str(os.getpid())})
                self._say(f"resuming interrupted run {run.run_id} (its process {run.tags.get(PID_TAG)} is gone)")
                return run
        return None

    # -- one run -----------------------------------------------------------------
    def _execute(self, job: JobSpec, host: PluginHost, plan: _Planned, prefix: str) -> None:
        info = plan.info
        self._say(f"{prefix}run {info.run_id} started; outputs in {info.output_folder}")
        try:
            if job.entry.kind == "container" and not self._parallel(job):
                plan.exit_code = self._run_inline(job, host, plan)
            else:
                plan.exit_code = self._run_process(job, plan, prefix)
        except Exception:
            (info.logs_folder / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
            plan.exit_code = 1
            raise
        finally:
            if plan.exit_code == 0:
                plan.status = "FINISHED"
            elif plan.status == "RUNNING":
                plan.status = "FAILED"
            if plan.status != "KILLED":
                self.store.finish(info.run_id, plan.status)
                self._say(f"{prefix}run {info.run_id} {plan.status}")

    def _run_inline(self, job: JobSpec, host: PluginHost, plan: _Planned) -> int:
        from himl_kernel.errors import HimlError
        from himl_kernel.runner import load_container, run_container

        # The run's identity goes into the environment too, so that processes the
        # model starts (Lightning's DDP workers re-run this command) join this run.
        run_env = {**job.env_vars, **plan.info.to_environ()}
        saved_env = {k: os.environ.get(k) for k in run_env}
        os.environ.update(run_env)
        try:
            container = load_container(host, job.entry.target, job.entry.args + plan.args)
            run_container(host, container, plan.info)
        except HimlError as exc:  # one line, as on the command line; the other trials go on
            (plan.info.logs_folder / "error.txt").write_text(f"{exc}\n", encoding="utf-8")
            print(f"himl: error: run {plan.info.run_id}: {mask_secrets(str(exc))}", file=sys.stderr)
            return exc.exit_code
        except Exception:
            text = traceback.format_exc()
            (plan.info.logs_folder / "error.txt").write_text(text, encoding="utf-8")
            sys.stderr.write(text)
            return 1
        finally:
            for key, old in saved_env.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old
        return 0

    def _run_process(self, job: JobSpec, plan: _Planned, prefix: str) -> int:
        command = job.entry.command() + plan.args
        env = dict(os.environ)
        env.update(job.env_vars)
        env.update(plan.info.to_environ())
        env["PYTHONUNBUFFERED"] = "1"
        log_path = plan.info.logs_folder / "stdout.txt"
        started = time.monotonic()
        with open(log_path, "w", encoding="utf-8") as log:
            log.write(f"$ {mask_secrets(shlex.join(command))}\n")
            log.flush()
            process = subprocess.Popen(
                command,
                cwd=job.snapshot.root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
            timer: threading.Timer | None = None
            timed_out = threading.Event()
            if job.max_run_duration_s is not None:

                def stop() -> None:
                    timed_out.set()
                    _kill_group(process)

                timer = threading.Timer(job.max_run_duration_s, stop)
                timer.daemon = True
                timer.start()
            try:
                assert process.stdout is not None
                for line in process.stdout:
                    log.write(line)
                    log.flush()
                    with self._print_lock:
                        self.out.write(prefix + line)
                        self.out.flush()
                code = process.wait()
            except KeyboardInterrupt:
                _kill_group(process)
                process.wait()
                plan.status = "KILLED"
                raise
            finally:
                if timer is not None:
                    timer.cancel()
        if timed_out.is_set():
            plan.status = "KILLED"
            self._say(
                f"{prefix}run {plan.info.run_id} stopped after {time.monotonic() - started:.0f} s "
                f"(max_run_duration_s={job.max_run_duration_s})"
            )
            return 124
        return code


RESUME_TAG = "himl.resume_key"
PID_TAG = "himl.pid"
HOST_TAG = "himl.host"


def _resume_key(*parts: Any) -> str:
    """A stable digest of what makes two submissions the same job."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _owner_tags(key: str) -> dict[str, str]:
    return {RESUME_TAG: key, PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def output_folder_of(run_id: str, store: RunStore | None = None) -> Path:
    """The outputs folder of a local run (its artifacts ``outputs/``)."""
    store = store or RunStore()
    return store.folders(store.get(run_id))[0]
