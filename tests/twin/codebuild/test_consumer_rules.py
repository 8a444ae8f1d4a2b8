"""Issue 13: the consumers of a family, as buildspecs/bootstrap/family.py reads them.

`family.py read` returns, with the family, every `[consumers.<name>]` whose
`families` list it, sorted by name, each as {name, owner, test_script}
(`<tests>/run.sh` for a linux family, `run.ps1` for a windows one). A
consumer that names the family and breaks one of the catalog's rules (the
family-name rule, declared families, the path rule, the owner rule, no
other key) is refused, and so is one whose `families` cannot be read as a
list of names: nothing of it reaches test.yml, which never evaluates a
catalog value anyway. The buildspec's own command is run on such catalogs in
test_injection.py.
"""

import json
import subprocess
import sys

import family  # buildspecs/bootstrap/family.py
import pytest
from cbtwin import REPO

FAMILIES = """
[families.fam-linux]
path = "images/fam-linux"
os = "linux"
roles = []

[families.fam-win]
path = "images/fam-win"
os = "windows"
roles = []

[families.other]
path = "images/other"
os = "linux"
roles = []
"""


def catalog(tmp_path, consumers, top=""):
    """A gild.toml with three families and the given consumer tables (top:
    top-level keys, which must come before any table)."""
    path = tmp_path / "gild.toml"
    path.write_text(top + FAMILIES + consumers, encoding="utf-8")
    return str(path)


def consumer(
    name="app",
    families='["fam-linux"]',
    tests='"consumers/app"',
    owner='"team-app"',
    extra="",
):
    """One [consumers.<name>] table; name is written as a TOML quoted key."""
    lines = [f"\n[consumers.{json.dumps(name)}]"]
    for key, value in (("families", families), ("tests", tests), ("owner", owner)):
        if value is not None:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n" + extra


def test_consumers_of_a_family_sorted_with_the_script_of_its_os(tmp_path):
    """Only the family's consumers, by name; run.sh for linux, run.ps1 for
    windows; the tests path normalised; owners as written."""
    path = catalog(
        tmp_path,
        consumer(
            "zeta", tests='"consumers/zeta/"', owner='"Team Zeta @ ops/billing_2.0"'
        )
        + consumer(
            "alpha", families='["fam-win", "fam-linux"]', tests='"apps/alpha/tests"'
        )
        + consumer("beta", families='["other"]'),
    )
    assert family.read("fam-linux", path)["consumers"] == [
        {
            "name": "alpha",
            "owner": "team-app",
            "test_script": "apps/alpha/tests/run.sh",
        },
        {
            "name": "zeta",
            "owner": "Team Zeta @ ops/billing_2.0",
            "test_script": "consumers/zeta/run.sh",
        },
    ]
    assert family.read("fam-win", path)["consumers"] == [
        {
            "name": "alpha",
            "owner": "team-app",
            "test_script": "apps/alpha/tests/run.ps1",
        }
    ]
    assert [c["name"] for c in family.read("other", path)["consumers"]] == ["beta"]


def test_a_catalog_without_consumers_gives_an_empty_list(tmp_path):
    """The key is always there, so test.yml can count it."""
    assert family.read("fam-linux", catalog(tmp_path, ""))["consumers"] == []


# Each entry: a consumer of fam-linux breaking one rule, and a word of the
# message that must name the problem. `$(touch /tmp/p)`-like values are
# refused by the rules themselves, before anything could run them.
REFUSED = {
    "hostile name": (consumer(name="x$(touch /tmp/gild-p)"), "bad consumer name"),
    "backquoted name": (consumer(name="x`touch /tmp/gild-p`"), "bad consumer name"),
    "uppercase name": (consumer(name="Payments"), "bad consumer name"),
    "name too long": (consumer(name="x" * 65), "bad consumer name"),
    "hostile tests": (consumer(tests='"consumers/x$(touch /tmp/gild-p)"'), "tests"),
    "tests with a newline": (
        consumer(tests='"consumers/x\\ntouch /tmp/gild-p"'),
        "tests",
    ),
    "tests with a space": (consumer(tests='"consumers/x touch"'), "tests"),
    "tests climbing out": (consumer(tests='"consumers/../../etc"'), "tests"),
    "absolute tests": (consumer(tests='"/etc"'), "tests"),
    "tests not a string": (consumer(tests="5"), "tests"),
    "no tests": (consumer(tests=None), "tests"),
    "hostile owner": (consumer(owner='"team$(touch /tmp/gild-p)"'), "owner"),
    "owner with a quote": (consumer(owner="\"team'; touch /tmp/gild-p; '\""), "owner"),
    "owner with a newline": (consumer(owner='"team\\nx"'), "owner"),
    "empty owner": (consumer(owner='""'), "owner"),
    "owner too long": (consumer(owner=json.dumps("x" * 101)), "owner"),
    "owner not a string": (consumer(owner="7"), "owner"),
    "no owner": (consumer(owner=None), "owner"),
    "unknown family": (consumer(families='["fam-linux", "nope"]'), "nope"),
    "family listed twice": (
        consumer(families='["fam-linux", "fam-linux"]'),
        "listed twice",
    ),
    "unknown key": (consumer(extra='owners = ["x"]\n'), "unknown keys"),
    # Whether these name fam-linux cannot be told: refused for every family.
    "families a string": (consumer(families='"fam-linux"'), "non-empty list"),
    "families empty": (consumer(families="[]"), "non-empty list"),
    "families not names": (consumer(families='["fam-linux", 3]'), "non-empty list"),
    "no families": (consumer(families=None), "non-empty list"),
    "entry not a table": ('\n[consumers]\napp = "fam-linux"\n', "table"),
    "consumers not tables": ("", "consumers must be tables", 'consumers = ["app"]\n'),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_bad_consumer_of_the_family_is_refused(tmp_path, case):
    """read() raises, naming the rule the entry breaks."""
    text, word, *top = REFUSED[case]
    with pytest.raises(ValueError, match="consumer") as err:
        family.read("fam-linux", catalog(tmp_path, text, *top))
    assert word in str(err.value)


def test_another_familys_consumer_is_not_this_familys_business(tmp_path):
    """A well-formed consumer of `other` naming an undeclared family fails
    other's test only (the Rust catalog refuses the whole catalog anyway)."""
    path = catalog(tmp_path, consumer(families='["other", "nope"]'))
    assert family.read("fam-linux", path)["consumers"] == []
    with pytest.raises(ValueError, match="'nope'"):
        family.read("other", path)


@pytest.mark.parametrize(
    ("owner", "valid"),
    [
        ("team-payments", True),
        ("Team Payments", True),
        ("ops@example.org", True),
        ("org/team_a.b-c", True),
        ("x" * 100, True),
        (" ", False),
        ("   ", False),
        ("", False),
        ("x" * 101, False),
        ("team$(touch /tmp/p)", False),
        ("team`id`", False),
        ("team;id", False),
        ("team\nx", False),
        ("team\tx", False),
        ("équipe", False),
        ("team\x00", False),
        (None, False),
        (["team"], False),
    ],
)
def test_owner_rule(owner, valid):
    """1-100 of A-Z, a-z, 0-9, space and `._@/-`, not only spaces: the Rust
    catalog's rule (`valid_owner`)."""
    assert family.valid_owner(owner) is valid


def test_cli_refuses_a_bad_consumer_and_writes_nothing(tmp_path):
    """`family.py read` as the buildspec runs it: exit 1, the problem on
    stderr, no JSON for test.yml to read."""
    marker = tmp_path / "pwned"
    catalog(tmp_path, consumer(owner=json.dumps(f"x$(touch {marker})")))
    out = tmp_path / "family.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "buildspecs/bootstrap/family.py"),
            "read",
            "fam-linux",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "gild: consumer 'app': owner" in done.stderr
    assert not out.exists() and not marker.exists()


def test_the_catalog_consumers_are_read_for_their_families():
    """gild.toml's own consumers: one per family, with its owner and a test
    script that exists (read from the repository root, as the buildspec)."""
    path = str(REPO / "gild.toml")
    found = {
        name: family.read(name, path)["consumers"]
        for name in ("debian13-base", "win2022-core-dotnet", "win2022-iis")
    }
    assert found == {
        "debian13-base": [
            {
                "name": "billing-worker",
                "owner": "team-billing",
                "test_script": "consumers/billing-worker/run.sh",
            }
        ],
        "win2022-core-dotnet": [
            {
                "name": "orders-service",
                "owner": "team-orders",
                "test_script": "consumers/orders-service/run.ps1",
            }
        ],
        "win2022-iis": [
            {
                "name": "payments-api",
                "owner": "team-payments",
                "test_script": "consumers/payments-api/run.ps1",
            }
        ],
    }
    for consumers in found.values():
        for entry in consumers:
            assert (REPO / entry["test_script"]).is_file(), entry
