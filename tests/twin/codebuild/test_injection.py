"""Defect 11: a catalog `path` must never be executed by the buildspecs.

Before the fix, pre_build printed `GILD_PATH=<path>` into family.env and
`source`d it, so `path = "images/x$(touch M)"` ran `touch M` (so did a
newline, a space or a backquote). Each case runs the whole buildspec
through the runner on a copy of the repository whose gild.toml has such a
path, and checks that the marker file was never created and that the build
failed in pre_build without launching anything.

GILD_TWIN_BUILDSPECS_REV=<git revision> runs the same tests on that
revision's buildspecs (e.g. the commit before the fix, to see them fail).
"""

import json
import os
import shutil
import subprocess

import pytest
from cbtwin import REPO

# Each payload creates the file named by MARKER when a shell evaluates it.
PAYLOADS = {
    "command substitution": "images/x$(touch MARKER)",
    "backquotes": "images/x`touch MARKER`",
    "newline": "images/x\ntouch MARKER",
    "space": "images/x touch MARKER",
    "semicolon": "images/x;touch MARKER",
    "quote": "images/x';touch MARKER;'",
}


def hostile_source(tmp_path, path_value):
    """A copy of the repository with one more family, `evil`, at path_value."""
    source = tmp_path / "source"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".git", "target", ".venv", "__pycache__"),
    )
    rev = os.environ.get("GILD_TWIN_BUILDSPECS_REV")
    if rev:
        for name in ("bake.yml", "test.yml"):
            old = subprocess.run(
                ["git", "-C", str(REPO), "show", f"{rev}:buildspecs/{name}"],
                capture_output=True,
                check=True,
            ).stdout
            (source / "buildspecs" / name).write_bytes(old)
    with open(source / "gild.toml", "a", encoding="utf-8") as f:
        # json.dumps gives a TOML basic string: same escapes for these.
        f.write(
            f'\n[families.evil]\npath = {json.dumps(path_value)}\nos = "linux"\nroles = []\n'
        )
    return source


@pytest.mark.parametrize("buildspec", ["buildspecs/bake.yml", "buildspecs/test.yml"])
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_catalog_path_is_never_executed(module_twin, tmp_path, buildspec, payload):
    """The marker never appears; pre_build fails; no instance is launched."""
    marker = tmp_path / "pwned"
    source = hostile_source(tmp_path, PAYLOADS[payload].replace("MARKER", str(marker)))
    twin = module_twin
    result = twin.run(
        buildspec,
        "evil",
        env={"GILD_AMI_ID": "ami-0123456789abcdef0"},
        source=source,
        expect="FAILED",
    )
    assert not marker.exists(), f"{buildspec} executed the catalog path ({payload})"
    phases = {p["phaseType"]: p["phaseStatus"] for p in result["phases"]}
    assert phases["PRE_BUILD"] == "FAILED", result["log"][-3000:]
    assert "must be a relative folder" in result["log"]
    assert twin.instances(result["id"]) == {}
