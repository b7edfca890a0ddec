"""Rules every role's tasks keep, read from the YAML (the behaviour itself runs in the integration tests)."""

from __future__ import annotations

from pathlib import Path

import yaml

PLAYBOOKS = Path(__file__).resolve().parents[3] / "playbooks"


def _tasks(doc):
    for t in doc or []:
        if isinstance(t, dict):
            yield t
            for key in ("block", "rescue", "always"):
                yield from _tasks(t.get(key))


def _all_tasks():
    for f in sorted(PLAYBOOKS.glob("**/tasks/*.yml")) + sorted(PLAYBOOKS.glob("tasks/*.yml")):
        for t in _tasks(yaml.safe_load(f.read_text())):
            yield f.relative_to(PLAYBOOKS), t


def test_the_package_index_is_refreshed_when_stale_not_only_after_a_change():
    """A node moved to a newer stack must not install from an index fetched before that stack existed."""
    refreshes = [(f, t) for f, t in _all_tasks() if (t.get("ansible.builtin.apt") or {}).get("update_cache")]
    assert refreshes
    for f, t in refreshes:
        apt = t["ansible.builtin.apt"]
        assert "cache_valid_time" in apt, (str(f), t.get("name"))
        assert "is changed" not in str(t.get("when", "")), (str(f), t.get("name"))


def test_pinned_packages_come_from_the_one_selection_and_are_held():
    """Roles take names and pins from clusterkit_apt_packages and hold what they pin."""
    for role in ("nvidia_driver", "fabric_manager", "dcgm", "nccl", "container_toolkit"):
        text = (PLAYBOOKS / "roles" / role / "tasks" / "main.yml").read_text()
        assert f"'{role}' | clusterkit_apt_packages(" in text, role
        assert "ansible.builtin.dpkg_selections" in text and "selection: hold" in text, role


def test_no_role_writes_a_second_source_for_a_repository():
    """Repositories are configured only through tasks/apt_source.yml (one source per URL)."""
    for f, t in _all_tasks():
        dest = str((t.get("ansible.builtin.template") or t.get("ansible.builtin.copy") or {}).get("dest", ""))
        if "sources.list.d" in dest:
            assert str(f) == "tasks/apt_source.yml", (str(f), t.get("name"))
