"""Configuration precedence, parsing and one-line errors, through `load_config` and the real CLI."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from controller.config import ConfigError, flag_specs, load_config, parse_go_duration


def test_defaults() -> None:
    config = load_config([], {})
    assert config.controller.concurrent == 4
    assert config.controller.enable_leader_election is False
    assert config.controller.leader_election_lease_duration == 35
    assert config.controller.max_retry_delay == 300
    assert config.generators.max_redirects == 10


def test_flag_beats_env_beats_file_beats_default(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("concurrent: 2\nkube-api-qps: 7\nkube-api-burst: 9\nmax-redirects: 3\n")
    env = {"EXTERNALSOURCE_CONCURRENT": "5", "EXTERNALSOURCE_KUBE_API_QPS": "8"}
    config = load_config(["--config", str(path), "--concurrent", "6"], env)
    assert config.controller.concurrent == 6  # flag
    assert config.controller.kube_api_qps == 8  # env
    assert config.controller.kube_api_burst == 9  # file
    assert config.generators.max_redirects == 3  # file, another room's settings
    assert config.controller.health_addr == ":9440"  # default


def test_config_file_from_env(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("enable-leader-election: true\nmin-retry-delay: 2s\n")
    config = load_config([], {"EXTERNALSOURCE_CONFIG": str(path)})
    assert config.controller.enable_leader_election is True
    assert config.controller.min_retry_delay == 2


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--enable-leader-election"], True),
        (["--enable-leader-election=true"], True),
        (["--enable-leader-election=false"], False),
        (["--enable-leader-election", "false"], False),
        ([], False),
    ],
)
def test_bool_flags(argv: list[str], expected: bool) -> None:
    assert load_config(argv, {}).controller.enable_leader_election is expected


def test_bool_env_false_overrides_a_true_default() -> None:
    config = load_config([], {"EXTERNALSOURCE_WATCH_ALL_NAMESPACES": "false"})
    assert config.controller.watch_all_namespaces is False


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("1.5s", 1.5),
        ("300ms", 0.3),
        ("2h45m10s", 9910),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        (["--concurrent", "many"], {}, "--concurrent: 'many' is not an integer"),
        (["--concurrent", "0"], {}, "--concurrent: must be at least 1"),
        (["--min-retry-delay", "10"], {}, "--min-retry-delay: '10' is not a duration"),
        ([], {"EXTERNALSOURCE_MAX_RETRY_DELAY": "5 minutes"}, "--max-retry-delay:"),
        (["--log-level", "loud"], {}, "--log-level: 'loud' is not one of debug, info, warn, error"),
        (
            ["--enable-leader-election=maybe"],
            {},
            "--enable-leader-election: 'maybe' is not true or false",
        ),
        (
            ["--interval-jitter-percentage", "150"],
            {},
            "--interval-jitter-percentage: must be between 0 and 99",
        ),
        (
            ["--leader-election-renew-deadline", "40s"],
            {},
            "--leader-election-renew-deadline: must be shorter than "
            "--leader-election-lease-duration",
        ),
        (["--min-retry-delay", "10m"], {}, "--min-retry-delay: must not exceed --max-retry-delay"),
        (["--no-such-flag"], {}, "unrecognized arguments: --no-such-flag"),
        (["--max-artifact-size", "big"], {}, "--max-artifact-size: 'big' is not an integer"),
    ],
)
def test_bad_values_name_the_setting(argv: list[str], env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(argv, env)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_config_file_errors(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("concurrent: [1\n")
    with pytest.raises(ConfigError, match=r"--config: .* is not valid YAML at line"):
        load_config(["--config", str(bad)], {})
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("concurent: 3\n")
    with pytest.raises(ConfigError, match="--config: unknown setting 'concurent'"):
        load_config(["--config", str(unknown)], {})
    with pytest.raises(ConfigError, match="--config: cannot read"):
        load_config(["--config", str(tmp_path / "missing.yaml")], {})
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("min-retry-delay: 2\n")
    with pytest.raises(ConfigError, match="--min-retry-delay: '2' is not a duration"):
        load_config(["--config", str(wrong)], {})


def test_cli_bad_value_prints_one_line_and_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "controller", "--kube-api-qps", "fast"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "externalsource-controller: invalid configuration: --kube-api-qps: 'fast' is not a number"
    ]


def test_help_documents_every_flag_with_its_env_var() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "controller", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    flat = " ".join(proc.stdout.split())
    for spec in flag_specs():
        assert spec.flag in flat
        assert spec.env in flat
