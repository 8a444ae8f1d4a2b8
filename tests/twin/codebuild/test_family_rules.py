"""Defect 12 (and 11's path rule): one family-name rule and one path rule.

tests/fixtures/family-names.json and family-paths.json are the rules' cases;
crates/core/src/catalog.rs is tested against the same files. Here both
buildspecs are: the exact command text each buildspec runs (read from the
YAML, run with bash as CodeBuild would) must accept every valid entry and
refuse every invalid one, and the path it reads must be the normalised one.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import family  # buildspecs/bootstrap/family.py, the buildspecs' own reader
import pytest
import yaml
from cbtwin import REPO, STANDINS, TOOLS_BIN

NAMES = json.loads(
    (REPO / "tests/fixtures/family-names.json").read_text(encoding="utf-8")
)
PATHS = json.loads(
    (REPO / "tests/fixtures/family-paths.json").read_text(encoding="utf-8")
)
BUILDSPECS = ["buildspecs/bake.yml", "buildspecs/test.yml"]
# The phase that reads the catalog: bake.yml reads it in install, so that a
# family it cannot bake stops before anything is downloaded.
READS_IN = {"buildspecs/bake.yml": "install", "buildspecs/test.yml": "pre_build"}


def command(buildspec, phase, needle):
    """The one command of `phase` that contains needle, as written."""
    spec = yaml.safe_load((REPO / buildspec).read_text(encoding="utf-8"))
    found = [c for c in spec["phases"][phase]["commands"] if needle in c]
    assert len(found) == 1, f"{buildspec} {phase}: {len(found)} commands use {needle!r}"
    return found[0]


def run(cmd, cwd, env):
    """One buildspec command in bash, as the runner runs it."""
    return subprocess.run(
        ["bash", "-c", cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def base_env(tmp_path):
    """What the commands before the checked one would have set."""
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    return {
        "PATH": os.pathsep.join(
            [str(STANDINS / "bin"), str(TOOLS_BIN), os.environ["PATH"]]
        ),
        "LC_ALL": "C.UTF-8",
        "GILD_TRIGGER": "push",
        "GILD_SOURCE_COMMIT": "0" * 40,
        "GILD_KMS_KEY_ID": "alias/gild",
        "GILD_SUBNET_ID": "subnet-0",
        "GILD_SECURITY_GROUP_ID": "sg-0",
        "GILD_WINRM_SECURITY_GROUP_ID": "sg-1",
        "GILD_INSTANCE_PROFILE": "gild-builder",
        "GILD_ARTIFACT_BUCKET": "gild-artifacts",
        "GILD_AMI_ID": "ami-0123456789abcdef0",
        "AWS_REGION": "us-east-1",
        "CODEBUILD_BUILD_ID": "gild:00000000-0000-4000-8000-000000000000",
        "GILD_STATE": str(state),
        "GILD_OUT": "out",
    }


def test_fixture_entries_are_distinct_and_cover_the_edges():
    """The fixture itself: no entry on both sides, the edges present."""
    assert not set(NAMES["valid"]) & set(NAMES["invalid"])
    assert not set(PATHS["valid"]) & set(PATHS["invalid"])
    assert "x" * 64 in NAMES["valid"] and "x" * 65 in NAMES["invalid"]
    for needle in ("_", "\n", "$", "`", " ", "'", '"'):
        assert any(needle in n for n in NAMES["invalid"]), needle
        assert any(needle in p for p in PATHS["invalid"]), needle


@pytest.mark.parametrize("name", NAMES["valid"] + NAMES["invalid"])
def test_reader_follows_the_name_rule(name):
    """buildspecs/bootstrap/family.py == the fixture, entry by entry."""
    assert family.valid_name(name) == (name in NAMES["valid"])


@pytest.mark.parametrize("path", PATHS["valid"] + PATHS["invalid"])
def test_reader_follows_the_path_rule(path):
    """Valid paths come back normalised; invalid ones are refused."""
    expected = PATHS["normalised"].get(path, path) if path in PATHS["valid"] else None
    assert family.normalise_path(path) == expected


@pytest.mark.parametrize("buildspec", BUILDSPECS)
def test_buildspec_refuses_exactly_the_invalid_names(tmp_path, buildspec):
    """The install phase's check, run for every name of the fixture."""
    cmd = command(buildspec, "install", "family.py check-name")
    env = base_env(tmp_path)
    wrong = []
    for name in NAMES["valid"] + NAMES["invalid"]:
        if "\0" in name:
            continue  # no environment variable can carry NUL (CodeBuild's neither)
        done = run(cmd, REPO, {**env, "GILD_FAMILY": name})
        if (done.returncode == 0) != (name in NAMES["valid"]):
            wrong.append((name, done.returncode, done.stderr.strip()[-200:]))
    assert wrong == []


def catalog_with(source, path):
    """A source folder whose gild.toml has one family, `fam`, at path."""
    if source.exists():
        shutil.rmtree(source)
    (source / "buildspecs").mkdir(parents=True)
    shutil.copytree(
        REPO / "buildspecs" / "bootstrap", source / "buildspecs" / "bootstrap"
    )
    text = f'[families.fam]\npath = {json.dumps(path)}\nos = "linux"\nroles = []\n'
    (source / "gild.toml").write_text(text, encoding="utf-8")
    normalised = family.normalise_path(path)
    if normalised:
        folder = source / normalised
        (folder / "tests").mkdir(parents=True)
        (folder / "fam.pkr.hcl").write_text('locals {\n  family = "fam"\n}\n')
        (folder / "tests" / "run.sh").write_text("#!/bin/sh\necho 'ok - fam'\n")


@pytest.mark.parametrize("buildspec", BUILDSPECS)
def test_buildspec_reads_exactly_the_valid_paths(tmp_path, buildspec):
    """The catalog read, run for every path of the fixture."""
    cmd = command(buildspec, READS_IN[buildspec], "family.py read")
    env = {**base_env(tmp_path), "GILD_FAMILY": "fam"}
    source = tmp_path / "src"
    wrong = []
    for path in PATHS["valid"] + PATHS["invalid"]:
        catalog_with(source, path)
        result = Path(env["GILD_STATE"]) / "family.json"
        result.unlink(missing_ok=True)
        done = run(cmd, source, env)
        valid = path in PATHS["valid"]
        if (done.returncode == 0) != valid:
            wrong.append((path, done.returncode, done.stderr.strip()[-300:]))
        elif valid:
            read = json.loads(result.read_text())["path"]
            if read != PATHS["normalised"].get(path, path):
                wrong.append((path, "read as", read))
    assert wrong == []
