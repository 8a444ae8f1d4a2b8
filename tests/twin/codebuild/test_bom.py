"""buildspecs/bootstrap/bom.py: the builder's list (bom.tsv) made into
gild.bom/1 as docs/bom.md describes it (crates/core's parser reads it).

The collectors' output is simulated here (no Debian or Windows builder
runs); what the collectors write is their header and one tab-separated line
per package, as bom-linux.sh and bom-windows.ps1 print them.
"""

import datetime
import json
import subprocess
import sys

import bom  # buildspecs/bootstrap/bom.py
import pytest
from cbtwin import REPO

AMI = "ami-0123456789abcdef0"
HEADER = "# gild.bom raw: collected_at=2026-12-06T21:00:00Z\n"
WINDOWS = (
    "\ufeff"  # a byte-order mark, as Windows PowerShell may write one
    + HEADER
    + "program\tMicrosoft .NET Runtime - 8.0.11 (x64)\t8.0.11.34221\t\n"
    + "program\tMicrosoft .NET Runtime - 8.0.11 (x64)\t8.0.9.0\t\n"
    + "program\t  Amazon SSM Agent \t 3.3.2958.0 \t\n"
    + "program\tNo Version\t\t\n"
    + "hotfix\tKB5044281\t\t\n"
    + "hotfix\tKB5044281\t\t\n"
    + "feature\tWeb-Server\t\t\n"
    + "hotfix\tKB5011497\t\t\n"
)


def test_a_windows_list_becomes_the_documented_shape():
    """Identity order (hotfix, feature, program; then name), each identity
    once (a program listed at two versions kept at the highest, a hotfix
    listed twice once), fields trimmed, no empty field, the image and the
    collection time in."""
    doc = bom.build(WINDOWS, "win2022-iis", "windows", AMI)
    assert doc == {
        "schema": "gild.bom/1",
        "family": "win2022-iis",
        "image": AMI,
        "os": "windows",
        "collected_at": "2026-12-06T21:00:00Z",
        "packages": [
            {"kind": "hotfix", "name": "KB5011497"},
            {"kind": "hotfix", "name": "KB5044281"},
            {"kind": "feature", "name": "Web-Server"},
            {"kind": "program", "name": "Amazon SSM Agent", "version": "3.3.2958.0"},
            {
                "kind": "program",
                "name": "Microsoft .NET Runtime - 8.0.11 (x64)",
                "version": "8.0.11.34221",
            },
            {"kind": "program", "name": "No Version"},
        ],
    }


def test_a_linux_list_keeps_name_version_and_arch():
    raw = HEADER + "dpkg\tlibc6\t2.41-12\ti386\ndpkg\tlibc6\t2.41-12\tamd64\n"
    doc = bom.build(raw, "debian13-base", "linux", AMI)
    assert doc["packages"] == [
        {"kind": "dpkg", "name": "libc6", "version": "2.41-12", "arch": "amd64"},
        {"kind": "dpkg", "name": "libc6", "version": "2.41-12", "arch": "i386"},
    ]


def test_without_a_header_the_time_is_now():
    now = datetime.datetime(2026, 12, 7, 1, 2, 3, tzinfo=datetime.UTC)
    doc = bom.build("dpkg\ta\t1\tall\n", "debian13-base", "linux", AMI, now=now)
    assert doc["collected_at"] == "2026-12-07T01:02:03Z"


@pytest.mark.parametrize(
    ("raw", "os_name", "says"),
    [
        ("hotfix\tKB1\t\t\n", "linux", "kind 'hotfix'"),
        ("dpkg\topenssl\t3.5.1-1\tamd64\n", "windows", "kind 'dpkg'"),
        ("dpkg\t\t1\tall\n", "linux", "without a name"),
        ("dpkg\topenssl\t\tamd64\n", "linux", "without version or arch"),
        ("program\tx\x1b[31m\t1\t\n", "windows", "control character"),
        (
            "dpkg\tsudo\t1.9.16p2-3\tamd64\ndpkg\tsudo\t1.9.16p2-4\tamd64\n",
            "linux",
            "listed twice",
        ),
        (HEADER, "linux", "no package"),
    ],
    ids=[
        "other-os",
        "other-os-2",
        "no-name",
        "no-version",
        "control",
        "twice",
        "empty",
    ],
)
def test_what_the_parser_would_refuse_is_refused_here(raw, os_name, says):
    with pytest.raises(ValueError, match=says):
        bom.build(raw, "debian13-base", os_name, AMI)


def test_the_command_line_as_bake_yml_runs_it(tmp_path):
    """--raw ... --out: the JSON file; a refusal exits 1 naming the file."""
    (tmp_path / "bom.tsv").write_text(WINDOWS, encoding="utf-8")
    cmd = [sys.executable, str(REPO / "buildspecs/bootstrap/bom.py")]
    args = ["--raw", str(tmp_path / "bom.tsv"), "--family", "win2022-iis"]
    out = ["--image", AMI, "--out", str(tmp_path / "bom.json")]
    done = subprocess.run(
        [*cmd, *args, "--os", "windows", *out],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "bom.json").read_text())["image"] == AMI
    done = subprocess.run(
        [*cmd, *args, "--os", "linux", *out],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "bom.tsv: line 2: kind 'program'" in done.stderr
