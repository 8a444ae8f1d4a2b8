"""The bake and test roles of infra/template.yaml against every API call the
builds make (tests/fixtures/packer-amazon-calls.json), evaluated as AWS
would (evaluate.py). A call the role does not allow fails, naming the call,
its source, the resource and why no statement allows it.

The roles are resolved from the template with its defaults, and again for
every parameter variant that changes what they grant (roles.variants).
"""

import copy
import json
import re

import pytest

from . import calls, roles
from .evaluate import evaluate

BUILD_ROLES = ("BakeRole", "TestRole")


def _variants():
    """Parameter variants, keeping only those that change the build roles."""
    seen, out = set(), []
    for name, params in roles.variants().items():
        resolved = roles.named_roles(parameters=params)
        key = json.dumps([resolved[r] for r in BUILD_ROLES], sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append((name, params))
    return out


VARIANTS = _variants()
FIXTURE = calls.load()


def refusals(policies, stack, role, fixture=FIXTURE):
    out = []
    for request in calls.requests(stack, role, fixture):
        decision = evaluate(
            policies, request.action, [request.resource], request.context
        )
        if not decision.allowed:
            out.append(f"{request.describe()}\n    -> {decision.reason}")
    return out


@pytest.mark.parametrize(("variant", "params"), VARIANTS, ids=[v for v, _ in VARIANTS])
@pytest.mark.parametrize("role", BUILD_ROLES)
def test_role_allows_every_call_of_its_build(role, variant, params):
    policies = roles.named_roles(parameters=params)[role]
    stack = roles.Stack(roles.load(), params)
    missing = refusals(policies, stack, role)
    if missing:
        pytest.fail(
            f"{role} ({variant}) refuses {len(missing)} authorization(s):\n"
            + "\n".join(missing),
            pytrace=False,
        )


def test_the_variants_cover_both_repository_hosts():
    names = [v for v, _ in VARIANTS]
    assert "defaults" in names and "github" in names, names


def test_fixture_names_its_sources_and_resolves():
    stack = roles.Stack(roles.load())
    assert FIXTURE["derived_from"]["packer_plugin"]["tag"] == "v1.8.0"
    for call in FIXTURE["calls"]:
        assert call["source"] and call["made_by"] and call["authorizes"], call["id"]
        assert call["role"] in BUILD_ROLES, call["id"]
    for role in BUILD_ROLES:
        reqs = calls.requests(stack, role)
        assert reqs, role
        for r in reqs:
            assert calls.unresolved(r.resource) == [], r.describe()
            assert all(not calls.unresolved(str(v)) for v in r.context.values()), (
                r.describe()
            )
            assert ":" in r.action and "*" not in r.action, r.describe()


def test_the_pinned_plugin_is_the_one_the_templates_require():
    pinned = {
        p.read_text()
        .split('source  = "github.com/hashicorp/amazon"')[0]
        .rsplit('version = "', 1)[1]
        .split('"')[0]
        for p in (roles.REPO / "images").glob("*/*.pkr.hcl")
        if "hashicorp/amazon" in p.read_text()
    }
    assert pinned == {"= 1.8.0"}, pinned


@pytest.mark.parametrize(
    ("sid", "call_id"),
    [
        ("TemporaryKeyPair", "packer.key-pair.create"),
        ("PassOnlyTheInstanceRole", "packer.run-instances.linux"),
        ("SessionDocuments", "packer.ssm.start-port-forwarding"),
        ("WorkOnlyOnGildInstances", "packer.create-image"),
    ],
)
def test_removing_a_grant_fails_the_calls_that_need_it(sid, call_id):
    """The check bites: without one of the bake role's statements, the call
    that needs it is refused and named."""
    stack = roles.Stack(roles.load())
    policies = copy.deepcopy(roles.named_roles()["BakeRole"])
    removed = 0
    for policy in policies:
        statements = policy["PolicyDocument"]["Statement"]
        kept = [s for s in statements if s.get("Sid") != sid]
        removed += len(statements) - len(kept)
        policy["PolicyDocument"]["Statement"] = kept
    assert removed == 1, f"no statement {sid} in BakeRole"
    assert any(
        line.startswith(call_id + ":") for line in refusals(policies, stack, "BakeRole")
    )


# The AWS CLI commands the buildspecs and the Packer templates run, by role.
_CLI = re.compile(
    r"\baws\s+(ec2|ssm|s3|s3api|codebuild|sts|kms|iam|logs)\s+([a-z][a-z0-9-]*)(?:\s+([a-z][a-z0-9-]*))?"
)
_WAITERS = {
    "instance-terminated": "DescribeInstances",
    "instance-running": "DescribeInstances",
    "image-available": "DescribeImages",
}
_CLI_SOURCES = {
    "BakeRole": ["buildspecs/bake.yml", "images/*/*.pkr.hcl"],
    "TestRole": ["buildspecs/test.yml"],
}


def cli_actions(role):
    """IAM actions of every `aws <service> <command>` in the role's files."""
    found = set()
    for pattern in _CLI_SOURCES[role]:
        for path in roles.REPO.glob(pattern):
            for service, command, waiter in _CLI.findall(
                path.read_text(encoding="utf-8")
            ):
                name = (
                    _WAITERS[waiter]
                    if command == "wait"
                    else "".join(w.title() for w in command.split("-"))
                )
                # `aws s3api` is the S3 API's own commands: IAM's s3.
                iam_service = "s3" if service == "s3api" else service
                found.add(f"{iam_service}:{name}")
    return found


@pytest.mark.parametrize("role", BUILD_ROLES)
def test_every_aws_cli_command_of_the_builds_is_in_the_fixture(role):
    """A new `aws ...` command in a buildspec or template fails here until
    the fixture lists what it authorizes."""
    listed = {
        a["action"]
        for c in FIXTURE["calls"]
        if c["role"] == role
        for a in c["authorizes"]
    }
    used = cli_actions(role)
    assert used, role
    assert used <= listed, f"not in packer-amazon-calls.json: {sorted(used - listed)}"
