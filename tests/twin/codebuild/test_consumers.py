"""Issue 13: consumer tests in test.yml, and the GILD_TEST_SUITES summary.

After the family's script, test.yml sends every consumer's script to the
same instance (one SSM command each) and reports one JUnit <testsuite> per
script: `gild.<family>`, then `consumer.<name>` with the consumer, owner,
family and AMI as properties. Any failing suite fails the build. The
summary for the functions, GILD_TEST_SUITES, is exported however the build
ends. The end-to-end tests run the buildspec through the twin (the SSM
stand-in answers each script's checks, `--fail NAME=CHECK` fails one); the
report tool test.yml writes in install ($GILD_STATE/report.py) is also run
directly on recorded suites, for the cases a twin cannot reach cheaply.
"""

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import yaml
from cbtwin import (
    REPO,
    assert_all_terminated,
    baked_image,
    exported,
    family_script,
    junit,
    suites_exported,
)
from codebuild_ssm_proxy import check_names

CONSUMER = {
    "debian13-base": (
        "billing-worker",
        "team-billing",
        "consumers/billing-worker/run.sh",
    ),
    "win2022-iis": ("payments-api", "team-payments", "consumers/payments-api/run.ps1"),
}
SUMMARY_KEYS = [
    "suite",
    "name",
    "owner",
    "tests",
    "failures",
    "skipped",
    "seconds",
    "failed",
]


def checks_of(path):
    """The literal check names of a test script, as the SSM stand-in reads them."""
    return check_names((REPO / path).read_bytes())


def suites_by_name(root):
    """{suite name: <testsuite>} of a JUnit root, checking it is one <testsuites>."""
    assert root.tag == "testsuites"
    return {s.get("name"): s for s in root.findall("testsuite")}


def properties(suite):
    """A <testsuite>'s properties as a dict."""
    return {p.get("name"): p.get("value") for p in suite.find("properties")}


def cases(suite):
    """[(name, status)] of a <testsuite>'s cases."""
    out = []
    for case in suite.findall("testcase"):
        status = "passed"
        if case.find("failure") is not None:
            status = "failed"
        elif case.find("skipped") is not None:
            status = "skipped"
        out.append((case.get("name"), status))
    return out


def commands_sent(twin):
    """[(comment, [instance ids])] of every SendCommand, as test.yml sent it:
    moto lists the commands (its own InstanceIds are not reliable), the SSM
    stand-in the invocations of each (one per instance the request named)."""
    sent = []
    for command in twin.client("ssm", direct=True).list_commands()["Commands"]:
        invocations = twin.client("ssm").list_command_invocations(
            CommandId=command["CommandId"]
        )["CommandInvocations"]
        sent.append((command["Comment"], [i["InstanceId"] for i in invocations]))
    return sorted(sent)


def phase_status(result):
    """{phase: status} of a build result."""
    return {p["phaseType"]: p["phaseStatus"] for p in result["phases"]}


# ----- end to end, through the twin ------------------------------------------------


def test_consumer_suites_run_on_the_family_instance(twin):
    """Everything passes: SUCCEEDED; junit.xml is one <testsuites> with the
    family's suite then the consumer's, each case a check of its script,
    the consumer's properties and durations set; GILD_TEST_SUITES says the
    same in its documented shape; both SSM commands went to the one
    instance, which is terminated."""
    ami = baked_image(twin, "win2022-iis")
    result = twin.run(
        "buildspecs/test.yml",
        "win2022-iis",
        env={"GILD_AMI_ID": ami},
        expect="SUCCEEDED",
    )
    consumer, owner, script = CONSUMER["win2022-iis"]
    _, root = junit(result)
    suites = suites_by_name(root)
    assert list(suites) == ["gild.win2022-iis", f"consumer.{consumer}"]
    family_suite, consumer_suite = suites.values()
    family_checks = check_names(family_script("win2022-iis"))
    consumer_checks = checks_of(script)
    assert cases(family_suite) == [(n, "passed") for n in family_checks]
    assert cases(consumer_suite) == [(n, "passed") for n in consumer_checks]
    assert {c.get("classname") for c in consumer_suite.iter("testcase")} == {
        f"consumer.{consumer}"
    }
    assert properties(consumer_suite) == {
        "consumer": consumer,
        "owner": owner,
        "family": "win2022-iis",
        "ami": ami,
        "status": "Success",
        "exit_code": "0",
    }
    assert properties(family_suite)["family"] == "win2022-iis"
    for suite in suites.values():
        assert float(suite.get("time")) >= 0
        assert suite.get("failures") == "0"
    assert root.get("tests") == str(len(family_checks) + len(consumer_checks))

    summary = suites_exported(result)
    assert [list(s) for s in summary] == [SUMMARY_KEYS, SUMMARY_KEYS]
    for entry in summary:
        assert isinstance(entry["seconds"], int) and entry["seconds"] >= 0
        entry["seconds"] = 0
    assert summary == [
        {
            "suite": "family",
            "name": "win2022-iis",
            "owner": None,
            "tests": len(family_checks),
            "failures": 0,
            "skipped": 0,
            "seconds": 0,
            "failed": [],
        },
        {
            "suite": "consumer",
            "name": consumer,
            "owner": owner,
            "tests": len(consumer_checks),
            "failures": 0,
            "skipped": 0,
            "seconds": 0,
            "failed": [],
        },
    ]
    text = exported(result, "GILD_TEST_SUITES")
    assert text == json.dumps(json.loads(text), separators=(",", ":")), "not compact"

    (instance,) = twin.instances(result["id"])
    assert commands_sent(twin) == [
        (f"gild test win2022-iis: consumer {consumer}", [instance]),
        ("gild test win2022-iis: family win2022-iis", [instance]),
    ]
    assert_all_terminated(twin, result)


@pytest.fixture
def consumer_check():
    """A real check of payments-api's run.ps1, told to fail."""
    names = checks_of(CONSUMER["win2022-iis"][2])
    assert len(names) > 2, names
    return names[2]


def test_a_failing_consumer_check_fails_the_build(twin_factory, consumer_check):
    """`--fail payments-api=<check>`: FAILED in the build phase; the
    family's suite passes, the consumer's fails on that check only; the
    summary names it; the instance is terminated."""
    twin = twin_factory("--fail", f"payments-api={consumer_check}")
    ami = baked_image(twin, "win2022-iis")
    result = twin.run(
        "buildspecs/test.yml", "win2022-iis", env={"GILD_AMI_ID": ami}, expect="FAILED"
    )
    assert phase_status(result)["BUILD"] == "FAILED"
    assert phase_status(result)["POST_BUILD"] == "SUCCEEDED"
    report, root = junit(result)
    suites = suites_by_name(root)
    assert suites["gild.win2022-iis"].get("failures") == "0"
    assert suites["consumer.payments-api"].get("failures") == "1"
    failed = [
        (c["prefix"], c["name"]) for c in report["testCases"] if c["status"] == "FAILED"
    ]
    assert failed == [("consumer.payments-api", consumer_check)]
    family, consumer = suites_exported(result)
    assert (family["failures"], family["failed"]) == (0, [])
    assert consumer["name"] == "payments-api" and consumer["owner"] == "team-payments"
    assert (consumer["failures"], consumer["failed"]) == (1, [consumer_check])
    assert_all_terminated(twin, result)


def test_a_failing_family_still_runs_the_consumers(twin_factory):
    """A family check fails: the consumer's script still runs, on the same
    instance, and passes; the build fails for the family only."""
    check = check_names(family_script("win2022-iis"))[1]
    twin = twin_factory("--fail", f"win2022-iis={check}")
    ami = baked_image(twin, "win2022-iis")
    result = twin.run(
        "buildspecs/test.yml", "win2022-iis", env={"GILD_AMI_ID": ami}, expect="FAILED"
    )
    _, root = junit(result)
    consumer_suite = suites_by_name(root)["consumer.payments-api"]
    assert cases(consumer_suite) == [
        (n, "passed") for n in checks_of(CONSUMER["win2022-iis"][2])
    ]
    family, consumer = suites_exported(result)
    assert (family["failures"], family["failed"]) == (1, [check])
    assert consumer["failures"] == 0 and consumer["tests"] == len(cases(consumer_suite))
    (instance,) = twin.instances(result["id"])
    assert [ids for _, ids in commands_sent(twin)] == [[instance], [instance]]
    assert_all_terminated(twin, result)


def test_no_instance_still_exports_the_summary(twin_factory):
    """The launch's answer is lost, so no script runs: GILD_TEST_SUITES is
    still exported, the family's suite failing on `test run`, the
    consumer's skipped (its owner is not blamed); the instance is
    terminated."""
    twin = twin_factory("--lose", "RunInstances")
    ami = baked_image(twin, "debian13-base")
    result = twin.run(
        "buildspecs/test.yml",
        "debian13-base",
        env={"GILD_AMI_ID": ami, "AWS_MAX_ATTEMPTS": "1"},
        expect="FAILED",
    )
    family, consumer = suites_exported(result)
    assert family == {
        "suite": "family",
        "name": "debian13-base",
        "owner": None,
        "tests": 1,
        "failures": 1,
        "skipped": 0,
        "seconds": 0,
        "failed": ["test run"],
    }
    assert consumer == {
        "suite": "consumer",
        "name": "billing-worker",
        "owner": "team-billing",
        "tests": 1,
        "failures": 0,
        "skipped": 1,
        "seconds": 0,
        "failed": [],
    }
    report, _ = junit(result)
    skipped = [
        c for c in report["testCases"] if c["prefix"] == "consumer.billing-worker"
    ]
    assert [c["status"] for c in skipped] == ["SKIPPED"]
    assert "no test instance was launched" in skipped[0]["message"]
    assert commands_sent(twin) == []
    assert_all_terminated(twin, result)


def test_a_refused_environment_still_exports_the_summary(module_twin):
    """install refuses the build (no AMI id): the build ends there, without
    post_build, and GILD_TEST_SUITES still names the family's failure."""
    result = module_twin.run(
        "buildspecs/test.yml",
        "debian13-base",
        env={"GILD_AMI_ID": "not-an-ami"},
        expect="FAILED",
    )
    assert phase_status(result) == {"INSTALL": "FAILED"}
    (family,) = suites_exported(result)
    assert family["name"] == "debian13-base" and family["failed"] == ["test run"]
    assert family["failures"] == 1
    assert module_twin.instances(result["id"]) == {}


def test_a_missing_consumer_script_fails_that_suite_only(twin, tmp_path):
    """A consumer whose tests folder has no run.sh: its suite fails saying
    so, the family's passes, the build fails."""
    source = tmp_path / "source"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".git", "target", ".venv", "__pycache__"),
    )
    catalog = source / "gild.toml"
    catalog.write_text(
        catalog.read_text(encoding="utf-8").replace(
            'tests = "consumers/billing-worker"', 'tests = "consumers/nowhere"'
        ),
        encoding="utf-8",
    )
    ami = baked_image(twin, "debian13-base")
    result = twin.run(
        "buildspecs/test.yml",
        "debian13-base",
        env={"GILD_AMI_ID": ami},
        source=source,
        expect="FAILED",
    )
    family, consumer = suites_exported(result)
    assert family["failures"] == 0
    assert (consumer["failures"], consumer["failed"]) == (1, ["test run"])
    report, _ = junit(result)
    (case,) = [
        c for c in report["testCases"] if c["prefix"] == "consumer.billing-worker"
    ]
    assert case["message"] == "consumers/nowhere/run.sh is missing"
    assert_all_terminated(twin, result)


# ----- the report tool, on recorded suites -------------------------------------------


def report_source():
    """$GILD_STATE/report.py as test.yml's install writes it (its heredoc)."""
    spec = yaml.safe_load((REPO / "buildspecs/test.yml").read_text(encoding="utf-8"))
    (command,) = [c for c in spec["phases"]["install"]["commands"] if "report.py" in c]
    start = command.index("<<'PY'\n") + len("<<'PY'\n")
    return command[start : command.index("\nPY\n", start) + 1]


class Recorded:
    """A $GILD_STATE as test.yml's build phase leaves it, and the report run on it."""

    def __init__(self, tmp_path, consumers=(), family_json=True):
        self.tmp = tmp_path
        self.state = tmp_path / "state"
        (self.state / "suites").mkdir(parents=True)
        self.tool = tmp_path / "report.py"
        self.tool.write_text(report_source(), encoding="utf-8")
        self.count = 0
        if family_json:
            family = {
                "name": "fam",
                "os": "linux",
                "test_script": "images/fam/tests/run.sh",
                "consumers": [
                    {"name": n, "owner": f"team-{n}", "test_script": f"c/{n}/run.sh"}
                    for n in consumers
                ],
            }
            (self.state / "family.json").write_text(json.dumps(family))

    def suite(self, suite, name, stdout="", status="Success", code=0, seconds=0.0):
        """Records a suite that ran, with its script's output."""
        self.count += 1
        invocation = self.state / f"invocation-{self.count}.json"
        invocation.write_text(
            json.dumps(
                {
                    "StandardOutputContent": stdout,
                    "StandardErrorContent": "",
                    "Status": status,
                    "ResponseCode": code,
                }
            )
        )
        record = {"suite": suite, "name": name, "outcome": "ran",
                  "detail": str(invocation), "seconds": seconds}  # fmt: skip
        (self.state / "suites" / f"{self.count:03d}.json").write_text(
            json.dumps(record)
        )

    def done(self):
        """The build phase's command ran to its end."""
        (self.state / "suites.done").touch()

    def run(self, *args):
        """report.py ARGS in the source folder: (exit code, stdout, <testsuites>)."""
        env = dict(os.environ, GILD_STATE=str(self.state), GILD_FAMILY="fam",
                   GILD_AMI_ID="ami-0123456789abcdef0")  # fmt: skip
        done = subprocess.run(
            [sys.executable, str(self.tool), *args],
            cwd=self.tmp,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode in (0, 1), done.stderr
        root = ET.parse(self.tmp / "reports" / "junit.xml").getroot()
        return done.returncode, done.stdout, root

    def summary(self):
        """GILD_TEST_SUITES as post_build exports it."""
        code, out, _ = self.run("summary")
        assert code == 0
        text = out.strip()
        assert len(text) <= 3000, len(text)
        assert (self.state / "summary.json").read_text() == text
        return json.loads(text)


def tap(*checks):
    """Script output: `ok` for a name, `not ok` for (name, why)."""
    lines = []
    for n, check in enumerate(checks, 1):
        if isinstance(check, tuple):
            lines.append(f"not ok {n} - {check[0]}: {check[1]}")
        else:
            lines.append(f"ok {n} - {check}")
    return "\n".join(lines) + "\n"


def test_report_writes_each_suite_with_its_time_and_the_summary(tmp_path):
    """One <testsuite> per recorded suite, in run order, with tests,
    failures, skipped and time (seconds, 3 decimals); the verdict fails on
    the failing one; the summary has whole seconds."""
    state = Recorded(tmp_path, consumers=["app"])
    state.suite("family", "fam", tap("a", "b", "c # SKIP not here"), seconds=12.4)
    state.suite("consumer", "app", tap("x", ("y", "broken")), "Failed", 1, seconds=3.6)
    state.done()
    code, out, root = state.run("verdict")
    assert code == 1
    assert "gild test: 2 suites, 1 failing" in out
    family, consumer = root.findall("testsuite")
    assert (family.get("name"), family.get("time"), family.get("skipped")) == (
        "gild.fam",
        "12.400",
        "1",
    )
    assert (consumer.get("name"), consumer.get("time"), consumer.get("failures")) == (
        "consumer.app",
        "3.600",
        "1",
    )
    assert properties(consumer) == {
        "consumer": "app",
        "owner": "team-app",
        "family": "fam",
        "ami": "ami-0123456789abcdef0",
        "status": "Failed",
        "exit_code": "1",
    }
    assert cases(consumer) == [("x", "passed"), ("y", "failed")]
    assert (root.get("tests"), root.get("failures"), root.get("time")) == (
        "5",
        "1",
        "16.000",
    )
    assert state.summary() == [
        {"suite": "family", "name": "fam", "owner": None, "tests": 3, "failures": 0,
         "skipped": 1, "seconds": 12, "failed": []},
        {"suite": "consumer", "name": "app", "owner": "team-app", "tests": 2,
         "failures": 1, "skipped": 0, "seconds": 4, "failed": ["y"]},
    ]  # fmt: skip


def test_summary_names_at_most_three_failed_checks_clipped(tmp_path):
    """`failed`: the first three failing checks, each cut to 80 characters."""
    state = Recorded(tmp_path, consumers=["app"])
    state.suite("family", "fam", tap("a"))
    long = [(f"{i} " + "x" * 120, "no") for i in range(5)]
    state.suite("consumer", "app", tap(*long), "Failed", 1)
    state.done()
    _, consumer = state.summary()
    assert consumer["failures"] == 5
    assert consumer["failed"] == [name[:80] for name, _ in long[:3]]
    assert {len(f) for f in consumer["failed"]} == {80}


def test_summary_over_3000_characters_drops_the_failed_lists(tmp_path):
    """Twelve consumers each failing three long checks: the lists go, every
    suite stays."""
    names = [f"app-{i:02d}" for i in range(12)]
    state = Recorded(tmp_path, consumers=names)
    state.suite("family", "fam", tap("a"))
    for name in names:
        state.suite(
            "consumer",
            name,
            tap(*[("y" * 90 + str(i), "no") for i in range(3)]),
            "Failed",
            1,
        )
    state.done()
    summary = state.summary()
    assert [s["name"] for s in summary] == ["fam", *names]
    assert all("failed" not in s for s in summary)
    assert [s["failures"] for s in summary] == [0] + [3] * 12


def test_summary_far_over_3000_characters_keeps_the_family_and_failures(tmp_path):
    """Forty consumers, five failing: then the passing ones are left out."""
    names = [f"app-{i:02d}" for i in range(40)]
    failing = set(names[::8])
    state = Recorded(tmp_path, consumers=names)
    state.suite("family", "fam", tap("a"))
    for name in names:
        if name in failing:
            state.suite("consumer", name, tap(("y", "no")), "Failed", 1)
        else:
            state.suite("consumer", name, tap("x"))
    state.done()
    summary = state.summary()
    assert [s["name"] for s in summary] == ["fam", *sorted(failing)]


def test_a_run_that_died_early_is_reported(tmp_path):
    """The build command died after the family's suite (no done marker, the
    consumer never recorded): the family's suite gains a `test run`
    failure, the consumer's is skipped, the verdict fails."""
    state = Recorded(tmp_path, consumers=["app"])
    state.suite("family", "fam", tap("a"))
    code, _, root = state.run("verdict")
    assert code == 1
    family, consumer = root.findall("testsuite")
    assert cases(family) == [("a", "passed"), ("test run", "failed")]
    assert cases(consumer) == [("test run", "skipped")]
    assert [(s["failed"], s["skipped"]) for s in state.summary()] == [
        (["test run"], 0),
        ([], 1),
    ]


def test_a_refused_install_gets_a_family_failure(tmp_path):
    """Nothing recorded, no family.json: `summary WHY` (install's finally)
    reports the family's suite failing with WHY."""
    state = Recorded(tmp_path, family_json=False)
    code, out, root = state.run(
        "summary", "the build's environment was refused (see install)"
    )
    assert code == 0
    (suite,) = root.findall("testsuite")
    assert suite.find("testcase/failure").get("message") == (
        "the build's environment was refused (see install)"
    )
    assert json.loads(out)[0]["failed"] == ["test run"]


def test_a_script_that_failed_without_a_failing_check_fails(tmp_path):
    """Exit 1 with every check `ok`, or no check at all: the suite fails."""
    state = Recorded(tmp_path, consumers=["app"])
    state.suite("family", "fam", tap("a"), "Failed", 1)
    state.suite("consumer", "app", "nothing useful\n")
    state.done()
    code, _, root = state.run("verdict")
    assert code == 1
    family, consumer = root.findall("testsuite")
    assert cases(family) == [("a", "passed"), ("test run", "failed")]
    assert "ended Failed with exit code 1" in family.find("testcase/failure").get(
        "message"
    )
    assert cases(consumer) == [("test run", "failed")]
    assert consumer.find("testcase/failure").get("message") == (
        "the test script reported no checks"
    )


def test_output_xml_cannot_carry_is_replaced(tmp_path):
    """A script printing control characters still gives a JUnit file."""
    state = Recorded(tmp_path)
    state.suite("family", "fam", "ok - colour \x1b[0m\nok - nul\x00 inside\n")
    state.done()
    code, _, root = state.run("verdict")
    assert code == 0
    suite = root.find("testsuite")
    assert cases(suite) == [("colour ?[0m", "passed"), ("nul? inside", "passed")]
    assert "\x1b" not in suite.find("system-out").text
