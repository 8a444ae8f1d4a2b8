"""tools/ansible_catalog_check.py on small made-up repositories and on the
real one.

Each made-up repository starts as one that matches its gild.toml (a Linux
family and a Windows one), and each test breaks one thing the check holds
the playbooks to. Every broken case must fail with exactly the one message
that names it, so a check that passes everything, or blames the wrong
thing, cannot go unnoticed."""

import subprocess
import sys
import tomllib
from pathlib import Path

import ansible_catalog_check
import pytest
import yaml

CATALOG = """\
[families.base]
path = "images/base"
os = "linux"
roles = ["common", "agent"]

[families.win]
path = "images/win"
os = "windows"
roles = ["winbase", "web"]
"""

# A role may be named by a string or by a mapping with a `role` key.
PLAYBOOKS = {
    "base": [
        {
            "name": "Build base",
            "hosts": "all",
            "become": True,
            "roles": ["common", {"role": "agent"}],
        }
    ],
    # Windows: no become, and none is asked for.
    "win": [{"name": "Build win", "hosts": "all", "roles": ["winbase", "web"]}],
}


def _write_playbook(repo: Path, name: str, plays: list) -> None:
    path = repo / "ansible/playbooks" / f"{name}.yml"
    path.write_text(yaml.safe_dump(plays, sort_keys=False), encoding="utf-8")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose playbooks match its gild.toml."""
    (tmp_path / "gild.toml").write_text(CATALOG, encoding="utf-8")
    (tmp_path / "ansible/playbooks").mkdir(parents=True)
    for name, plays in PLAYBOOKS.items():
        _write_playbook(tmp_path, name, plays)
    for role in ("common", "agent", "winbase", "web"):
        for part in ("tasks", "defaults", "meta"):
            path = tmp_path / "ansible/roles" / role / part / "main.yml"
            path.parent.mkdir(parents=True)
            path.write_text("---\n", encoding="utf-8")
    return tmp_path


def _run(repo: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = ansible_catalog_check.main(["--root", str(repo)])
    out, err = capsys.readouterr()
    return status, out, err


def _fails_with(repo: Path, capsys: pytest.CaptureFixture[str], message: str) -> None:
    status, out, err = _run(repo, capsys)
    assert status == 1
    assert err.splitlines() == [f"ansible-syntax: {message}"]
    assert "match gild.toml" not in out


def _base_play(**changes) -> list:
    play = dict(PLAYBOOKS["base"][0], **changes)
    return [{k: v for k, v in play.items() if v is not None}]


def test_matching_repository_passes(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(repo, capsys) == (
        0,
        "ansible-syntax: 2 playbooks match gild.toml\n",
        "",
    )


def test_missing_playbook(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "ansible/playbooks/base.yml").unlink()
    _fails_with(repo, capsys, "base: ansible/playbooks/base.yml is missing")


def test_more_than_one_play(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_playbook(repo, "win", PLAYBOOKS["win"] * 2)
    _fails_with(repo, capsys, "ansible/playbooks/win.yml: 2 plays, want 1")


@pytest.mark.parametrize(
    "roles",
    [
        pytest.param(["agent", "common"], id="wrong-order"),
        pytest.param(["common"], id="role-left-out"),
        pytest.param(["common", "agent", "extra"], id="role-not-in-catalog"),
    ],
)
def test_roles_differ_from_the_catalog(
    repo: Path, capsys: pytest.CaptureFixture[str], roles: list[str]
) -> None:
    _write_playbook(repo, "base", _base_play(roles=roles))
    _fails_with(
        repo,
        capsys,
        f"ansible/playbooks/base.yml: roles {roles}, "
        "gild.toml says ['common', 'agent']",
    )


@pytest.mark.parametrize("hosts", ["default", None])
def test_hosts_not_all(
    repo: Path, capsys: pytest.CaptureFixture[str], hosts: str | None
) -> None:
    _write_playbook(repo, "base", _base_play(hosts=hosts))
    _fails_with(
        repo, capsys, f"ansible/playbooks/base.yml: hosts {hosts!r}, want 'all'"
    )


@pytest.mark.parametrize("become", [False, "true", None])
def test_linux_play_without_become(
    repo: Path, capsys: pytest.CaptureFixture[str], become: object
) -> None:
    _write_playbook(repo, "base", _base_play(become=become))
    _fails_with(
        repo, capsys, "ansible/playbooks/base.yml: a Linux play needs become: true"
    )


@pytest.mark.parametrize("part", ["tasks", "defaults", "meta"])
def test_missing_role_part(
    repo: Path, capsys: pytest.CaptureFixture[str], part: str
) -> None:
    (repo / "ansible/roles/web" / part / "main.yml").unlink()
    _fails_with(repo, capsys, f"win: ansible/roles/web/{part}/main.yml is missing")


def test_stray_playbook(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_playbook(repo, "old", PLAYBOOKS["win"])
    _fails_with(repo, capsys, "ansible/playbooks/old.yml: no family old in gild.toml")


def test_runs_as_a_program_in_the_current_directory(repo: Path) -> None:
    """As `make ansible-syntax` runs it: no argument, from the root."""

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, ansible_catalog_check.__file__],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )

    ok = run()
    assert (ok.returncode, ok.stdout, ok.stderr) == (
        0,
        "ansible-syntax: 2 playbooks match gild.toml\n",
        "",
    )
    (repo / "ansible/playbooks/win.yml").unlink()
    broken = run()
    assert broken.returncode == 1
    assert (
        broken.stderr == "ansible-syntax: win: ansible/playbooks/win.yml is missing\n"
    )


def test_real_repository_passes(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    families = tomllib.loads((root / "gild.toml").read_text(encoding="utf-8"))
    count = len(families["families"])
    assert count > 0
    assert _run(root, capsys) == (
        0,
        f"ansible-syntax: {count} playbooks match gild.toml\n",
        "",
    )
