"""The kernel's services for any trainer: ranks, atomic writes, recovery checkpoints, de-duplicated logging."""

from __future__ import annotations

from pathlib import Path

import pytest

import himl_kernel
from himl_kernel.atomic import atomic_write, atomic_write_text, remove_partial_files
from himl_kernel.current import activate, deactivate, log_metric, log_metrics, log_params
from himl_kernel.distributed import Ranks, ranks
from himl_kernel.errors import HimlError
from himl_kernel.plugins import build_host
from himl_kernel.recovery import (
    checkpoint_problem,
    is_resume,
    latest_recovery_checkpoint,
    load_recovery_checkpoint,
    recovery_checkpoints,
    recovery_folder,
    save_recovery_checkpoint,
)
from himl_kernel.runinfo import RunInfo
from himl_kernel.runstore import RunStore


def stored_run(himl_home: Path) -> tuple[RunStore, RunInfo]:
    store = RunStore()
    stored = store.create_run("trainer", "r")
    outputs, logs = store.folders(stored)
    return store, RunInfo(stored.run_id, "local", outputs, logs, tracking_uri=store.tracking_uri)


# -- ranks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, Ranks(0, 0, 0, 1)),
        ({"RANK": "5", "LOCAL_RANK": "1", "NODE_RANK": "2", "WORLD_SIZE": "8"}, Ranks(5, 1, 2, 8)),  # torchrun
        ({"LOCAL_RANK": "1", "NODE_RANK": "0", "WORLD_SIZE": "2"}, Ranks(1, 1, 0, 2)),  # Lightning's launcher
        ({"LOCAL_RANK": "0", "NODE_RANK": "1", "LOCAL_WORLD_SIZE": "4", "WORLD_SIZE": "8"}, Ranks(4, 0, 1, 8)),
        (
            {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4"},
            Ranks(3, 1, 0, 4),
        ),  # MPI on AzureML
    ],
)
def test_ranks_come_from_what_each_launcher_sets(environ: dict[str, str], expected: Ranks) -> None:
    assert ranks(environ) == expected


def test_a_rank_that_is_not_a_number_is_one_line_naming_the_variable() -> None:
    with pytest.raises(HimlError, match=r"^environment variable RANK='one' must be a whole number$"):
        ranks({"RANK": "one"})
    with pytest.raises(HimlError, match=r"LOCAL_RANK='-1' must not be negative"):
        ranks({"LOCAL_RANK": "-1"})


def test_the_package_names_the_services_for_trainers() -> None:
    assert himl_kernel.ranks is ranks
    assert himl_kernel.save_recovery_checkpoint is save_recovery_checkpoint
    assert himl_kernel.atomic_write is atomic_write


# -- atomic writes --------------------------------------------------------------------------------


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "state.bin"
    atomic_write_text(target, "old")

    def half_then_fail(handle: object) -> None:
        handle.write(b"new but not fin")  # type: ignore[attr-defined]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.bin"]
    assert (target.stat().st_mode & 0o777) == 0o644


def test_partial_files_a_killed_writer_left_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".state.bin.abc123.partial").write_bytes(b"half")
    (tmp_path / "state.bin").write_bytes(b"whole")
    removed = remove_partial_files(tmp_path)
    assert [p.name for p in removed] == [".state.bin.abc123.partial"]
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]


# -- recovery checkpoints -------------------------------------------------------------------------


def test_recovery_checkpoints_are_saved_pruned_found_and_loaded(himl_home: Path) -> None:
    import torch

    _, info = stored_run(himl_home)
    assert recovery_folder(info) == info.output_folder / "checkpoints"
    assert not is_resume(info) and load_recovery_checkpoint(info) is None
    for epoch in range(4):
        save_recovery_checkpoint({"weight": torch.full((2,), float(epoch))}, epoch, info)
    assert [epoch for epoch, _ in recovery_checkpoints(recovery_folder(info))] == [3, 2]  # the newest two kept
    assert is_resume(info)
    loaded = load_recovery_checkpoint(info)
    assert loaded is not None
    epoch, state = loaded
    assert epoch == 3 and torch.equal(state["weight"], torch.full((2,), 3.0))


def test_a_damaged_recovery_checkpoint_is_skipped_with_a_warning(
    himl_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, info = stored_run(himl_home)
    save_recovery_checkpoint({"epoch": 0}, 0, info)
    newest = save_recovery_checkpoint({"epoch": 1}, 1, info)
    newest.write_bytes(newest.read_bytes()[:40])  # truncated, as by a disk fault
    assert "truncated or corrupt" in checkpoint_problem(newest)
    found = latest_recovery_checkpoint(info)
    assert found is not None and found.name == "recovery-epoch=0000.ckpt"
    assert f"skipping recovery checkpoint {newest}" in capsys.readouterr().err


def test_only_global_rank_zero_writes_recovery_checkpoints(himl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, info = stored_run(himl_home)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    path = save_recovery_checkpoint({"epoch": 0}, 0, info)
    assert path.name == "recovery-epoch=0000.ckpt" and not path.exists()


def test_bad_recovery_arguments_are_one_line(himl_home: Path) -> None:
    _, info = stored_run(himl_home)
    with pytest.raises(HimlError, match="epoch must not be negative, got -1"):
        save_recovery_checkpoint({}, -1, info)
    with pytest.raises(HimlError, match="keeps at least one checkpoint, got keep=0"):
        save_recovery_checkpoint({}, 0, info, keep=0)


def test_the_recovery_folder_outside_a_run_says_how_to_start_one() -> None:
    with pytest.raises(HimlError, match=r"no run is active.*submit_if_needed"):
        recovery_folder()


# -- logging: each (metric, step) once, from rank zero only ---------------------------------------


def test_a_resumed_run_does_not_log_a_metric_step_it_already_holds(himl_home: Path) -> None:
    store, info = stored_run(himl_home)
    first = activate(info, build_host(autoload=False))
    try:
        log_metrics({"loss": 1.0, "acc": 0.1}, step=0)
        log_metrics({"loss": 0.5}, step=1)
    finally:
        deactivate(first)
    # A new process carries the run on (as after a kill) and replays epoch 1, then trains epoch 2.
    second = activate(info, build_host(autoload=False))
    try:
        assert log_metrics({"loss": 0.25, "acc": 0.2}, step=1) == {"acc": 0.2}
        assert log_metric("loss", 0.125, step=2)
        assert not log_metric("loss", 9.0, step=2)  # tracked in memory after the first read
        assert log_metrics({"loss": 7.0}) == {"loss": 7.0}  # no step: nothing to recognise it by
    finally:
        deactivate(second)
    assert sorted(store.metric_history(info.run_id, "loss")) == [(0, 1.0), (0, 7.0), (1, 0.5), (2, 0.125)]
    assert store.metric_history(info.run_id, "acc") == [(0, 0.1), (1, 0.2)]


def test_only_global_rank_zero_logs_but_every_rank_checks_values(
    himl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, info = stored_run(himl_home)
    active = activate(info, build_host(autoload=False))
    try:
        monkeypatch.setenv("LOCAL_RANK", "1")  # the second process Lightning or Fabric starts
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert log_metrics({"loss": 1.0}, step=0) == {}
        log_params({"lr": 0.1})
        with pytest.raises(HimlError, match="metric 'loss' must be a number, got 'low'"):
            log_metrics({"loss": "low"}, step=0)  # type: ignore[dict-item]
        monkeypatch.setenv("LOCAL_RANK", "0")
        assert log_metrics({"loss": 2.0}, step=0) == {"loss": 2.0}
    finally:
        deactivate(active)
    assert store.metric_history(info.run_id, "loss") == [(0, 2.0)]
    assert store.get(info.run_id).params == {}


@pytest.mark.parametrize("step", [-1, 1.5, "two"])
def test_a_step_that_is_not_a_whole_number_is_one_line(himl_home: Path, step: object) -> None:
    _, info = stored_run(himl_home)
    active = activate(info, build_host(autoload=False))
    try:
        with pytest.raises(HimlError, match=r"^metric step must be a whole number"):
            log_metrics({"loss": 1.0}, step=step)  # type: ignore[arg-type]
    finally:
        deactivate(active)


def test_nested_params_are_logged_as_dotted_keys(himl_home: Path) -> None:
    store, info = stored_run(himl_home)
    active = activate(info, build_host(autoload=False))
    try:
        log_params({"model": {"lr": 0.1, "layers": {"depth": 3}}, "seed": 1})
    finally:
        deactivate(active)
    assert store.get(info.run_id).params == {"model.lr": "0.1", "model.layers.depth": "3", "seed": "1"}
