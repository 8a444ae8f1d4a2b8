"""What the roles promise a first bake, read from the role files.

No Windows host runs here, so the Windows Update reachability check
(windows-baseline) is held to its shape: it runs before Windows Update, it
tests TCP 80 to ``*.windowsupdate.com`` and 443, and its failure names the
doc section that says what to open. And every ``docs/<file>.md#anchor`` the
roles print in a failure must exist, or the operator is sent nowhere."""

import re
from pathlib import Path

import yaml

UPDATES = "ansible/roles/windows-baseline/tasks/updates.yml"


def _tasks(root: Path, path: str) -> list[dict]:
    return yaml.safe_load((root / path).read_text(encoding="utf-8"))


def test_network_check_runs_before_windows_update(root: Path) -> None:
    tasks = _tasks(root, UPDATES)
    modules = [next(k for k in task if "." in k) for task in tasks]
    assert "ansible.windows.win_powershell" in modules
    assert "ansible.windows.win_updates" in modules
    first_probe = modules.index("ansible.windows.win_powershell")
    first_assert = modules.index("ansible.builtin.assert")
    assert first_probe < first_assert < modules.index("ansible.windows.win_updates")
    message = tasks[first_assert]["ansible.builtin.assert"]["fail_msg"]
    assert "security group must allow it" in message
    assert "docs/deploy.md#network" in message


def test_network_check_covers_http_and_https(root: Path) -> None:
    defaults = yaml.safe_load(
        (root / "ansible/roles/windows-baseline/defaults/main.yml").read_text()
    )
    assert defaults["windows_baseline_update_network_check"] is True
    endpoints = {
        (e["port"], e["pattern"]) for e in defaults["windows_baseline_update_endpoints"]
    }
    assert (80, "*.windowsupdate.com") in endpoints, "payloads come over plain HTTP"
    assert any(port == 443 for port, _ in endpoints)
    script = _tasks(root, UPDATES)[0]["ansible.windows.win_powershell"]["script"]
    # The probe must report what it could not reach, with port and pattern,
    # since that is what the failure message is made of.
    assert "$endpoint.port" in script and "$endpoint.pattern" in script
    assert "$Ansible.Result" in script


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to -."""
    anchors = set()
    for heading in re.findall(r"^#+\s+(.+)$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_doc_links_in_roles_and_pins_exist(root: Path) -> None:
    sources = [*sorted((root / "ansible").rglob("*.yml")), root / "tools/pins_check.py"]
    links = set()
    for source in sources:
        links |= set(re.findall(r"docs/([\w-]+\.md)#([\w-]+)", source.read_text()))
    assert ("deploy.md", "before-the-first-bake") in links
    assert ("deploy.md", "network") in links
    missing = [
        f"docs/{doc}#{anchor}"
        for doc, anchor in sorted(links)
        if anchor not in _anchors((root / "docs" / doc).read_text(encoding="utf-8"))
    ]
    assert missing == []
