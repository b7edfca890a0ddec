"""How `clusterkit provision`'s SSH options and -e values become Ansible settings."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from clusterkit.errors import ConfigError
from clusterkit.fleet.collect import FleetOptions
from clusterkit.fleet.provision import parse_extra_vars, ssh_settings


def test_fleet_options_become_ssh_args_forks_and_key(tmp_path):
    kh = tmp_path / "known hosts"
    env, forks = ssh_settings(FleetOptions(known_hosts=kh, identity_file=Path("id"), concurrency=7,
                                           connect_timeout_s=2.5, user="ops"), tmp_path / "cp")
    args = shlex.split(env["ANSIBLE_SSH_ARGS"])
    assert f"UserKnownHostsFile={kh.resolve()}" in args and "StrictHostKeyChecking=yes" in args
    assert forks == 7 and env["ANSIBLE_TIMEOUT"] == "3" and env["ANSIBLE_REMOTE_USER"] == "ops"
    assert env["ANSIBLE_PRIVATE_KEY_FILE"] == str(Path("id").resolve())
    assert env["ANSIBLE_SSH_CONTROL_PATH_DIR"] == str(tmp_path / "cp")
    env, _ = ssh_settings(FleetOptions(accept_new_host_keys=True), tmp_path / "cp")
    assert "StrictHostKeyChecking=accept-new" in env["ANSIBLE_SSH_ARGS"] and "UserKnownHostsFile" not in env["ANSIBLE_SSH_ARGS"]
    assert ssh_settings(None, tmp_path / "cp") == ({"ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp")}, None)


def test_extra_vars_as_ansible_playbook_takes_them(tmp_path):
    f = tmp_path / "vars.yml"
    f.write_text("a: 1\n")
    assert parse_extra_vars(["x=1 y='two words'", '{"z": [1, 2]}', f"@{f}"]) == (
        {"x": "1", "y": "two words", "z": [1, 2]}, [str(f.resolve())])
    assert parse_extra_vars(None) == ({}, [])


@pytest.mark.parametrize("value, message", [
    ("@/nonexistent/vars.yml", "no such file"),
    ("{not: [closed", "not valid YAML/JSON"),
    ("[1, 2]", "must be a mapping"),
    ("justaword", "expected key=value"),
])
def test_bad_extra_vars_are_config_errors(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_extra_vars([value])
