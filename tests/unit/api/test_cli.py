"""`externalsource validate`: one line per problem, exit codes, bad input, the installed script."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

import pytest

from controller.cli import main

GOOD = """\
apiVersion: source.flux.oddkin.co/v1alpha1
kind: ExternalSource
metadata: {name: flags, namespace: apps}
spec:
  interval: 5m
  generator: {type: http, http: {url: "https://api.example.com/flags"}}
"""
BAD = """\
apiVersion: source.flux.oddkin.co/v1alpha1
kind: ExternalSource
metadata: {name: broken, namespace: apps}
spec:
  interval: 10s
  destinationPath: ../escape
  generator: {type: http}
"""
SECRET = """\
apiVersion: v1
kind: Secret
metadata: {name: headers, namespace: apps}
stringData: {Authorization: Bearer x}
"""


def write(tmp_path: pathlib.Path, *documents: str) -> str:
    path = tmp_path / "sources.yaml"
    path.write_text("---\n".join(documents))
    return str(path)


def test_valid_file_prints_ok_and_exits_0(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "-f", write(tmp_path, SECRET, GOOD, GOOD)]) == 0
    assert capsys.readouterr().out == "OK: 2 ExternalSources valid\n"


def test_every_problem_of_every_source_is_one_line(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "-f", write(tmp_path, GOOD, BAD)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "apps/broken: spec.interval: must be at least 1m, got 10s",
        "apps/broken: spec.destinationPath: must not contain '..', '.' or empty segments",
        "apps/broken: spec.generator.http: is required when type is http",
    ]


def test_an_invalid_cel_expression_is_reported_like_the_controller_would(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = GOOD + "  transform: {cel: 'data.items.filter(i, '}\n"
    assert main(["validate", "-f", write(tmp_path, source)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("apps/flags: spec.transform.cel: invalid CEL expression at line 1")
    assert len(out.splitlines()) == 1


def test_a_source_without_namespace_or_name_is_still_labelled(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = GOOD.replace("metadata: {name: flags, namespace: apps}", "metadata: {}")
    assert main(["validate", "-f", write(tmp_path, SECRET, source)]) == 1
    assert capsys.readouterr().out == "(document 2): metadata.name: is required\n"


def test_bad_yaml_is_one_clear_error(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "spec: [unclosed\n")
    assert main(["validate", "-f", path]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    problem = "expected ',' or ']', but got '<stream end>'"
    assert captured.err == f"error: {path}: invalid YAML (line 2, column 1): {problem}\n"


def test_a_missing_file_is_one_clear_error(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["validate", "-f", str(missing)]) == 1
    assert capsys.readouterr().err == f"error: cannot read {missing}: No such file or directory\n"


def test_a_file_without_external_sources_fails(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, SECRET)
    assert main(["validate", "-f", path]) == 1
    assert capsys.readouterr().err == f"error: no ExternalSource found in {path}\n"


def test_the_installed_script_reads_stdin_and_sets_the_exit_code() -> None:
    script = pathlib.Path(sys.executable).with_name("externalsource")
    bad = subprocess.run(
        [str(script), "validate", "-f", "-"],
        input=BAD,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[0] == "apps/broken: spec.interval: must be at least 1m, got 10s"
    good = subprocess.run(
        [sys.executable, "-m", "controller.cli", "validate", "-f", "-"],
        input=textwrap.dedent(GOOD),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (good.returncode, good.stdout) == (0, "OK: 1 ExternalSource valid\n")


def test_a_subcommand_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2
    assert "validate" in capsys.readouterr().err
