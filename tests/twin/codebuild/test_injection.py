"""Defect 11: a catalog `path` must never be executed by the buildspecs.

Before the fix, pre_build printed `GILD_PATH=<path>` into family.env and
`source`d it, so `path = "images/x$(touch M)"` ran `touch M` (so did a
newline, a space or a backquote). Each case runs the whole buildspec
through the runner on a copy of the repository whose gild.toml has such a
path, and checks that the marker file was never created and that the build
failed in pre_build without launching anything.

The same holds for a consumer's name, `tests` and `owner` (issue 13): a
consumer of debian13-base carrying a payload fails test.yml in pre_build
(family.py refuses it), nothing is launched, and GILD_TEST_SUITES still
reports the family's suite failing.

And for a family's `variables` (issue 14): legal values carrying shell,
HCL-template or Go-template payloads reach Packer only in the JSON
var-file, verbatim, never on a command line; the bake runs and nothing is
executed. A payload in a variable's name is refused before anything runs.
bake.yml reads the catalog in install (test.yml in pre_build).

GILD_TWIN_BUILDSPECS_REV=<git revision> runs the same tests on that
revision's buildspecs (e.g. the commit before the fix, to see them fail).
"""

import json
import os
import shutil
import subprocess

import pytest
from cbtwin import REPO, suites_exported

# Each payload creates the file named by MARKER when a shell evaluates it.
PAYLOADS = {
    "command substitution": "images/x$(touch MARKER)",
    "backquotes": "images/x`touch MARKER`",
    "newline": "images/x\ntouch MARKER",
    "space": "images/x touch MARKER",
    "semicolon": "images/x;touch MARKER",
    "quote": "images/x';touch MARKER;'",
}


def hostile_source(tmp_path, path_value=None, consumer=None, variables=None):
    """A copy of the repository with one more family, `evil`, at path_value,
    or one more consumer of debian13-base: {name, tests, owner}, or
    debian13-base with these `variables` ({name: value})."""
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
        if path_value is not None:
            f.write(
                f'\n[families.evil]\npath = {json.dumps(path_value)}\nos = "linux"\nroles = []\n'
            )
        if variables is not None:
            f.write("\n[families.debian13-base.variables]\n")
            f.writelines(
                f"{json.dumps(key)} = {json.dumps(value)}\n"
                for key, value in variables.items()
            )
        if consumer is not None:
            f.write(
                f"\n[consumers.{json.dumps(consumer['name'])}]\n"
                'families = ["debian13-base"]\n'
                f"tests = {json.dumps(consumer['tests'])}\n"
                f"owner = {json.dumps(consumer['owner'])}\n"
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
    reads_in = "INSTALL" if "bake" in buildspec else "PRE_BUILD"
    assert phases[reads_in] == "FAILED", result["log"][-3000:]
    assert "must be a relative folder" in result["log"]
    assert twin.instances(result["id"]) == {}


# A consumer of debian13-base with one hostile field; the rest valid.
CONSUMER_PAYLOADS = {
    "name": {"name": "evil$(touch MARKER)", "tests": "consumers/evil", "owner": "team"},
    "tests": {"name": "evil", "tests": "consumers/x`touch MARKER`", "owner": "team"},
    "owner": {
        "name": "evil",
        "tests": "consumers/evil",
        "owner": "team';touch MARKER;'",
    },
}


@pytest.mark.parametrize("field", sorted(CONSUMER_PAYLOADS))
def test_consumer_fields_are_never_executed(module_twin, tmp_path, field):
    """test.yml with such a consumer: no marker, pre_build fails naming the
    consumer, no instance, and the summary reports the family's failure."""
    marker = tmp_path / "pwned"
    consumer = {
        k: v.replace("MARKER", str(marker)) for k, v in CONSUMER_PAYLOADS[field].items()
    }
    source = hostile_source(tmp_path, consumer=consumer)
    result = module_twin.run(
        "buildspecs/test.yml",
        "debian13-base",
        env={"GILD_AMI_ID": "ami-0123456789abcdef0"},
        source=source,
        expect="FAILED",
    )
    assert not marker.exists(), f"test.yml executed the consumer's {field}"
    phases = {p["phaseType"]: p["phaseStatus"] for p in result["phases"]}
    assert phases["PRE_BUILD"] == "FAILED", result["log"][-3000:]
    assert (
        "gild: bad consumer name" in result["log"]
        or "gild: consumer 'evil'" in result["log"]
    )
    assert module_twin.instances(result["id"]) == {}
    (family,) = suites_exported(result)
    assert (family["name"], family["failed"]) == ("debian13-base", ["test run"])


# Legal variable values (strings without control characters) that would do
# harm if a shell, HCL's template engine or the plugin's Go templates
# evaluated them. debian13-base's template declares none of these names:
# Packer ignores an undeclared var-file variable (hashicorp/packer v1.16
# hcl2template, collectInputVariableValues), and so does the stand-in.
VARIABLE_PAYLOADS = {
    "command_substitution": "x$(touch MARKER)",
    "backquotes": "x`touch MARKER`",
    "quotes": "x';touch MARKER;'\"",
    "hcl_template": '${file("MARKER")}%{ if true }x%{ endif }',
    "go_template": '{{ env "AWS_SECRET_ACCESS_KEY" }}',
}


def test_catalog_variables_are_never_executed(module_twin, tmp_path):
    """debian13-base with hostile variable values: the bake SUCCEEDS, no
    marker, the values are in the var-file exactly as the catalog has them,
    and Packer's command lines carry the var-file, none of the values."""
    marker = tmp_path / "pwned"
    variables = {
        k: v.replace("MARKER", str(marker)) for k, v in VARIABLE_PAYLOADS.items()
    }
    source = hostile_source(tmp_path, variables=variables)
    module_twin.run(
        "buildspecs/bake.yml", "debian13-base", source=source, expect="SUCCEEDED"
    )
    assert not marker.exists(), "bake.yml executed a catalog variable"
    work = module_twin.tmp / f"build-{module_twin.builds}"
    var_file = work / "state" / "family.pkrvars.json"
    assert json.loads(var_file.read_text(encoding="utf-8")) == variables
    runs = [
        c["argv"]
        for c in module_twin.standin_calls()
        if "argv" in c and c["argv"][:1] in (["validate"], ["build"])
    ]
    assert len(runs) >= 2, runs
    for argv in runs[-2:]:
        assert argv[argv.index("-var-file") + 1] == str(var_file)
        text = " ".join(argv)
        assert not [v for v in variables.values() if v in text], argv


@pytest.mark.parametrize(
    "key", ["x$(touch MARKER)", "x`touch MARKER`", "family", "source_ami"]
)
def test_bad_variable_names_stop_the_bake_in_install(module_twin, tmp_path, key):
    """A payload in a variable's name, or a name the bake sets itself:
    refused by family.py in install; no marker, nothing launched."""
    marker = tmp_path / "pwned"
    source = hostile_source(
        tmp_path, variables={key.replace("MARKER", str(marker)): "x"}
    )
    result = module_twin.run(
        "buildspecs/bake.yml", "debian13-base", source=source, expect="FAILED"
    )
    assert not marker.exists()
    phases = {p["phaseType"]: p["phaseStatus"] for p in result["phases"]}
    assert phases["INSTALL"] == "FAILED", result["log"][-3000:]
    assert "gild: family 'debian13-base': variable" in result["log"]
    assert module_twin.instances(result["id"]) == {}
