"""The command line speaks Ansible's and pdsh's language: a walk over every verb's options holds each short
flag to one meaning, the SSH options to Ansible's names, the history database to --db, and the help to
flags without value placeholders; conflicting options are refused (exit 2) rather than ignored."""

from __future__ import annotations

import json

import pytest

from clusterkit import __version__
from clusterkit.cli.main import command

# Every short flag of the tool and the one long option it stands for, on every verb that has it.
SHORT = {"-i": "--inventory", "-o": "--output", "-f": "--forks", "-l": "--limit", "-u": "--user",
         "-e": "--extra-vars", "-v": "--verbose", "-q": "--quiet", "-h": "--help", "-C": "--check", "-D": "--diff",
         "-t": "--tags", "-c": "--config"}
SSH_VERBS = ("verify", "collect", "provision", "burnin")


def _commands():
    """(path, command) for the root and every verb and subverb (typer's click objects, duck-typed)."""
    def walk(cmd, path: tuple[str, ...]):
        yield path, cmd
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            yield from walk(sub, path + (name,))
    return list(walk(command(), ()))


def _ctx(cmd, path=()):
    return cmd.context_class(cmd, info_name="clusterkit " + " ".join(path))


def _options(cmd) -> list:
    return [p for p in cmd.get_params(_ctx(cmd)) if p.param_type_name == "option"]


def _long(p) -> list[str]:
    return [o for o in p.opts if o.startswith("--")]



def test_the_walk_sees_every_verb():
    names = {" ".join(p) for p, _ in _commands()}
    assert {"verify", "collect", "analyze", "burnin", "provision", "history", "history diff", "exporter",
            "explain", "checks list", "inventory show", "profile show", "cost report"} <= names


def test_each_short_flag_means_one_thing_on_every_verb():
    seen = []
    for path, cmd in _commands():
        for p in _options(cmd):
            for o in p.opts:
                if o.startswith("-") and not o.startswith("--"):
                    assert o in SHORT, f"{' '.join(path)}: {o} is no short flag of clusterkit"
                    assert _long(p)[0] == SHORT[o], f"{' '.join(path)}: {o} is {_long(p)[0]}, not {SHORT[o]}"
                    seen.append(o)
    assert {"-i", "-o", "-f", "-l", "-u"} <= set(seen)


def test_format_has_no_short_flag_and_earlier_names_are_only_aliases():
    for path, cmd in _commands():
        for p in _options(cmd):
            longs = _long(p)
            if "--format" in longs:
                assert p.opts == ["--format"], f"{' '.join(path)}: --format takes no short flag (-f is --forks)"
            # the earlier spellings still work, but never as the name an option is known by
            assert longs[0] not in ("--out", "--history", "--identity", "--concurrency", "--from-history"), path
            if any(x in longs for x in ("--history", "--from-history")):
                assert longs[0] == "--db", path


def test_every_verb_that_reads_a_history_database_calls_it_db():
    for path, cmd in _commands():
        if path and path[0] in ("burnin", "history", "exporter", "verify") or path == ("cost", "report"):
            assert any("--db" in _long(p) for p in _options(cmd)), f"{' '.join(path)} has no --db"


def test_ssh_verbs_take_ansibles_names_and_keep_the_old_ones_as_aliases():
    for path, cmd in _commands():
        if path and path[0] in SSH_VERBS and len(path) == 1:
            opts = {o: p for p in _options(cmd) for o in p.opts}
            assert opts["-f"] is opts["--forks"] is opts["--concurrency"], path
            assert opts["--private-key"] is opts["--identity"] is opts["--key-file"], path
            assert opts["-u"] is opts["--user"] and "--known-hosts" in opts and "-i" in opts, path


def test_every_inventory_option_says_it_reads_ansible_inventory():
    found = 0
    for path, cmd in _commands():
        for p in _options(cmd):
            if "--inventory" in p.opts:
                assert "$ANSIBLE_INVENTORY" in (p.help or ""), f"{' '.join(path)}: --inventory without $ANSIBLE_INVENTORY"
                found += 1
    assert found >= 8


def test_flags_are_shown_without_a_value_placeholder(ck):
    for path, cmd in _commands():
        ctx = _ctx(cmd, path)
        text = cmd.get_help(ctx)
        assert "<bool>" not in text, " ".join(path)
        for p in _options(cmd):
            if p.is_flag and p.help:
                record = p.get_help_record(ctx)
                assert record is not None and set(record[0].split(", ")) == set(p.opts + p.secondary_opts), record
    code, out, _ = ck("verify", "-h")
    assert code == 0 and "  --simulate  " in out and "-f, --forks, --concurrency" in out


def test_version(ck):
    code, out, _ = ck("--version")
    assert code == 0 and out.strip() == f"clusterkit {__version__}"


@pytest.mark.parametrize("args, message", [
    (["verify", "--simulate", "-i", "INV"], "-i/--inventory cannot go with --simulate"),
    (["verify", "--simulate", "--limit", "gpu*"], "--limit cannot go with --simulate"),
    (["verify", "-i", "INV", "--nodes", "4"], "--nodes only go with --simulate"),
    (["burnin", "--simulate", "-i", "INV", "--db", "DB"], "-i/--inventory cannot go with --simulate"),
    (["verify", "--simulate", "--checks", "nope.*"], "--checks 'nope.*' matches no check"),
    (["verify", "--simulate", "--skip", "gpu.nope"], "--skip 'gpu.nope' matches no check"),
    (["verify", "-f", "0", "-i", "INV"], "--forks must be a finite number at least 1"),
])
def test_conflicting_options_are_refused_with_one_line(ck, tmp_path, args, message):
    inv = tmp_path / "hosts.ini"
    inv.write_text("[gpu]\nn1 ansible_host=127.0.0.1 gpu_count=0\n")
    args = [str(inv) if a == "INV" else str(tmp_path / "h.db") if a == "DB" else a for a in args]
    code, out, err = ck(*args)
    assert code == 2, out + err
    [line] = err.strip().splitlines()
    assert line.startswith("clusterkit: error: ") and message in line, line


def test_ansible_inventory_is_read_and_gives_way_to_simulate(ck, tmp_path, monkeypatch):
    inv = tmp_path / "hosts.ini"
    inv.write_text("[gpu]\ngpu01 ansible_host=10.0.0.1 gpu_count=0\ngpu02 ansible_host=10.0.0.2 gpu_count=0\n")
    monkeypatch.setenv("ANSIBLE_INVENTORY", str(inv))
    code, out, _ = ck("inventory", "show", "--format", "json")
    assert code == 0 and [h["name"] for h in json.loads(out)] == ["gpu01", "gpu02"]
    code, out, err = ck("verify", "--simulate", "--nodes", "2", "--checks", "host.disk", "--format", "json")
    assert code in (0, 1) and '"simulated": true' in out, err          # not refused: the environment gave it
    monkeypatch.setenv("ANSIBLE_INVENTORY", f"{inv},{tmp_path / 'other.ini'}")
    code, _, err = ck("inventory", "show")
    assert code == 2 and "names several inventories" in err
