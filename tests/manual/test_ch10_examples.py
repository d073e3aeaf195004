"""The manual's chapter 10 ("EXAMPLES"), samples 2 and 3, with only the import changed.

The manual prints the lines each sample adds to ``examples/1/sample.py`` (a
script that prints the primes below ``-n``); PRIMES is that script, written
here from the manual's description, and the manual's additions go in as printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.ai.ml.entities import AmlCompute

from tests.azure_v2.control_plane import ControlPlane
from tests.conftest import run_script
from tests.manual.conftest import as_himl

#: examples/2/sample.py: the manual's addition (``submit_to_azure_if_needed`` at the top of ``main``) to the
#: primes script; examples/3 adds ``-o/--output`` and writes the primes to ``run_info.output_folder``.
SAMPLE_3 = """
from argparse import ArgumentParser
from pathlib import Path

from health_azure import submit_to_azure_if_needed


def main() -> None:
    run_info = submit_to_azure_if_needed(
        compute_cluster_name="lite-testing-ds2",
        wait_for_completion=True,
        wait_for_completion_show_output=True)
    parser = ArgumentParser()
    parser.add_argument("-n", "--count", type=int, default=100, required=False, help="Maximum number")
    parser.add_argument("-o", "--output", type=str, default="primes.txt", required=False, help="Output file name")
    args = parser.parse_args()
    primes = [n for n in range(2, args.count) if all(n % d for d in range(2, int(n ** 0.5) + 1))]
    print(primes)
    output = run_info.output_folder / args.output
    output.write_text("\\n".join(map(str, primes)))


if __name__ == "__main__":
    main()
"""
PRIMES_BELOW_103 = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101]


@pytest.fixture
def sample(workspace_dir: Path, control_plane: ControlPlane) -> Path:
    control_plane.clusters.append(AmlCompute(name="lite-testing-ds2", size="STANDARD_DS2_V2", max_instances=1))
    (workspace_dir / "environment.yml").write_text("name: sample\ndependencies:\n  - python=3.10\n")
    script = workspace_dir / "sample.py"
    script.write_text(as_himl(SAMPLE_3))
    return script


def test_with_azureml_it_submits_waits_and_leaves_most_recent_run(
    sample: Path, control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    assert run_script(sample, "-n", "103", "--azureml", monkeypatch=monkeypatch) == 0
    assert "[2, 3, 5" not in capsys.readouterr().out  # "code after submit_to_azure_if_needed is not run locally"
    (job,) = control_plane.submitted
    rest = job.rest["properties"]
    # "the command line arguments are passed through (apart from --azureml)"
    assert rest["command"] == "python sample.py -n 103"
    assert rest["computeId"] == "lite-testing-ds2" and rest["experimentName"] == "sample"
    assert control_plane.streamed == ["himl_test_job_1"]  # wait_for_completion: its logs were followed
    assert (sample.parent / "most_recent_run.txt").read_text() == "himl_test_job_1"


def test_inside_azureml_the_output_file_goes_to_the_outputs_folder(
    sample: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("AZUREML_RUN_ID", "job_in_azure")
    monkeypatch.setenv("HIML_LOGGERS", "")
    assert run_script(sample, "-n", "103", "--azureml", monkeypatch=monkeypatch) == 0
    assert str(PRIMES_BELOW_103) in capsys.readouterr().out
    written = sample.parent / "outputs" / "primes.txt"
    assert written.read_text().split() == [str(p) for p in PRIMES_BELOW_103]


@pytest.mark.slow  # a local run records itself in a new MLflow store (~18 s on a loaded machine)
def test_locally_the_output_is_the_same_and_kept_with_the_run(
    himl_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    script = tmp_path / "sample.py"
    script.write_text(as_himl(SAMPLE_3))
    assert run_script(script, "-n", "103", monkeypatch=monkeypatch) == 0
    assert str(PRIMES_BELOW_103) in capsys.readouterr().out  # "the output will be exactly the same"
    (kept,) = himl_home.rglob("primes.txt")
    assert kept.parent.name == "outputs" and kept.read_text().split()[-1] == "101"
