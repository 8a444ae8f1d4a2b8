"""Issue 14: layered families and shared templates, as the buildspecs read them.

tests/fixtures/family-graphs.json holds the rules' cases (`parent`,
`template`, `variables`); crates/core/src/catalog.rs is tested against the
same file. Here every case goes through buildspecs/bootstrap/family.py as
the buildspecs run it (`family.py read NAME OUT.json --var-file VARS.json`,
in a folder holding the case's gild.toml):

- a valid catalog: every family reads back the fixture's template (default
  its path, normalised), parent and variables, and its var-file holds
  exactly its variables;
- an invalid catalog: at least one family is refused, and every refusal
  names every `errors` substring of the case (a cycle is named from its
  first-declared member whichever family is read, so each member's refusal
  says `a -> c -> b -> a`).

And the rules around them: the reserved names are the bake's own `-var`s,
and a family's test script is composed from its chain's own tests and its
template's.
"""

import json
import re
import subprocess
import sys
import tomllib

import family  # buildspecs/bootstrap/family.py, the buildspecs' own reader
import pytest
from cbtwin import REPO

GRAPHS = json.loads(
    (REPO / "tests/fixtures/family-graphs.json").read_text(encoding="utf-8")
)
READER = REPO / "buildspecs" / "bootstrap" / "family.py"


def read(folder, name):
    """`family.py read` as bake.yml runs it: (exit code, family, var-file, stderr)."""
    out, var_file = folder / f"{name}.json", folder / f"{name}.pkrvars.json"
    for path in (out, var_file):
        path.unlink(missing_ok=True)
    done = subprocess.run(
        [
            sys.executable,
            str(READER),
            "read",
            name,
            str(out),
            "--var-file",
            str(var_file),
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return done.returncode, None, None, done.stderr
    return (
        0,
        json.loads(out.read_text(encoding="utf-8")),
        json.loads(var_file.read_text(encoding="utf-8")),
        done.stderr,
    )


def catalog(tmp_path, text):
    """A folder holding `text` as its gild.toml, and the family names."""
    (tmp_path / "gild.toml").write_text(text, encoding="utf-8")
    return tmp_path, list(tomllib.loads(text)["families"])


@pytest.mark.parametrize(
    "case", GRAPHS["valid"], ids=[c["name"] for c in GRAPHS["valid"]]
)
def test_valid_catalogs_read_back(tmp_path, case):
    folder, names = catalog(tmp_path, case["catalog"])
    for name in names:
        code, found, var_file, stderr = read(folder, name)
        assert code == 0, stderr
        assert found["template"] == case["templates"][name]
        assert found["parent"] == case["parents"].get(name)
        assert found["variables"] == case["variables"][name]
        assert var_file == case["variables"][name]
        # The chain, parent first, as the rule walks it.
        chain, at = [], name
        while at in case["parents"]:
            at = case["parents"][at]
            chain.append(at)
        assert found["ancestors"] == chain


@pytest.mark.parametrize(
    "case", GRAPHS["invalid"], ids=[c["name"] for c in GRAPHS["invalid"]]
)
def test_invalid_catalogs_are_refused_naming_the_problem(tmp_path, case):
    folder, names = catalog(tmp_path, case["catalog"])
    refusals = {}
    for name in names:
        code, _, _, stderr = read(folder, name)
        if code != 0:
            assert code == 1, stderr
            refusals[name] = stderr
    assert refusals, f"{case['name']}: no family was refused"
    for name, message in refusals.items():
        missing = [e for e in case["errors"] if e not in message]
        assert not missing, (
            f"{case['name']}: reading {name}: {message!r} lacks {missing}"
        )


def test_reserved_names_are_the_fixtures_and_bake_sets_each():
    """family.py reserves exactly the fixture's names, and they are exactly
    what bake.yml passes to Packer itself (`-var`, which a var-file cannot
    override): a catalog can never set one, and a `-var` the fixture does
    not reserve (build_id once) would be silently overridden."""
    assert list(family.RESERVED) == GRAPHS["reserved"]
    assert family.MAX_DEPTH == GRAPHS["max_depth"]
    bake = (REPO / "buildspecs" / "bake.yml").read_text(encoding="utf-8")
    passed = set(re.findall(r'-var "([a-z_]+)=', bake))
    assert set(GRAPHS["reserved"]) == passed, set(GRAPHS["reserved"]) ^ passed


def write(folder, files):
    for path, text in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text, encoding="utf-8")


LAYERED = """
[families.base]
path = "images/base"
template = "images/shared"
os = "windows"
[families.mid]
path = "images/mid"
template = "images/shared"
parent = "base"
os = "windows"
[families.top]
path = "images/top"
template = "images/other"
parent = "mid"
os = "windows"
[families.own]
path = "images/own"
os = "linux"
"""


def test_test_script_is_the_chains_own_tests_then_the_templates(tmp_path):
    """mid: base's own tests, mid's, then the template's, each headed by
    its path; top (another template): its own, then its template's; own
    (its path is its template): its one script, byte for byte; a family
    with no script at all is refused, naming where it looked."""
    write(
        tmp_path,
        {
            "gild.toml": LAYERED,
            "images/base/tests/run.ps1": "# base\n",
            "images/mid/tests/run.ps1": "# mid",
            "images/shared/tests/run.ps1": "# shared\n",
            "images/other/tests/run.ps1": "# other\n",
            "images/top/tests/run.ps1": "# top\n",
            "images/own/tests/run.sh": "#!/bin/sh\necho 'ok - own'\n",
        },
    )
    toml = str(tmp_path / "gild.toml")
    assert family.read("mid", toml)["test_scripts"] == [
        "images/base/tests/run.ps1",
        "images/mid/tests/run.ps1",
        "images/shared/tests/run.ps1",
    ]
    assert family.test_script("mid", toml) == (
        b"# ----- gild: images/base/tests/run.ps1 -----\n# base\n"
        b"# ----- gild: images/mid/tests/run.ps1 -----\n# mid\n"
        b"# ----- gild: images/shared/tests/run.ps1 -----\n# shared\n"
    )
    assert family.read("top", toml)["test_scripts"] == [
        "images/top/tests/run.ps1",
        "images/other/tests/run.ps1",
    ]
    assert family.test_script("own", toml) == b"#!/bin/sh\necho 'ok - own'\n"
    (tmp_path / "images/own/tests/run.sh").unlink()
    with pytest.raises(ValueError, match="images/own/tests/run.sh"):
        family.test_script("own", toml)


def test_the_seed_catalog_reads_as_issue_14_wants():
    """gild.toml: win2022-iis is a child of win2022-core-dotnet, both on
    the shared Windows template with their variables; debian13-base on its
    own folder; each family's test script composes and every part exists."""
    toml = str(REPO / "gild.toml")
    iis = family.read("win2022-iis", toml)
    core = family.read("win2022-core-dotnet", toml)
    debian = family.read("debian13-base", toml)
    assert (iis["parent"], iis["template"]) == (
        "win2022-core-dotnet",
        "images/windows-server",
    )
    assert (core["parent"], core["template"]) == (None, "images/windows-server")
    assert iis["variables"] == core["variables"] == {"edition": "core"}
    assert (debian["parent"], debian["template"], debian["variables"]) == (
        None,
        "images/debian13-base",
        {},
    )
    assert iis["test_scripts"] == [
        "images/win2022-core-dotnet/tests/run.ps1",
        "images/win2022-iis/tests/run.ps1",
        "images/windows-server/tests/run.ps1",
    ]
    assert (
        family.test_script("debian13-base", toml)
        == (REPO / "images/debian13-base/tests/run.sh").read_bytes()
    )
