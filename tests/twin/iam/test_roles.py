"""roles.py resolves the template's roles as CloudFormation would."""

import json
import re

import pytest

from . import roles


def statement(policies, sid):
    found = [
        s
        for p in policies
        for s in p["PolicyDocument"]["Statement"]
        if s.get("Sid") == sid
    ]
    assert len(found) == 1, f"{sid}: {len(found)} statements"
    return found[0]


def test_every_role_of_the_template_is_read_from_it():
    template = roles.load()
    declared = {
        k for k, v in template["Resources"].items() if v["Type"] == "AWS::IAM::Role"
    }
    # GITHUB with Slack creates every conditional role but the two only
    # CODECOMMIT has: ReviewerRole (gild's one identity on its pull
    # requests) and ApprovalTemplateRole (the approval-rule template's).
    codecommit_only = {"ReviewerRole", "ApprovalTemplateRole"}
    resolved = roles.named_roles(parameters=roles.variants()["github+slack+email"])
    assert set(resolved) == declared - codecommit_only
    assert codecommit_only <= set(roles.named_roles())
    assert {"BakeRole", "TestRole", "InstanceRole"} <= set(roles.named_roles())


def test_conditions_decide_which_roles_exist():
    assert "GitHubWebhookRole" not in roles.named_roles()
    assert "GitHubWebhookRole" in roles.named_roles(parameters=roles.GITHUB_PARAMETERS)


def test_fn_if_picks_the_repository_host_branch():
    codecommit = roles.named_roles()["BakeRole"]
    github = roles.named_roles(parameters=roles.GITHUB_PARAMETERS)["BakeRole"]
    pull = statement(codecommit, "PullTheImagesRepository")
    # RepositoryName defaults to empty: the stack names the repository it
    # creates <ProjectPrefix>-images-<8 characters of the stack id>.
    assert pull["Resource"].startswith(
        "arn:aws:codecommit:us-east-1:123456789012:gild-images-"
    ), pull["Resource"]
    through = statement(github, "PullTheImagesRepositoryThroughTheConnection")
    assert through["Resource"] == roles.GITHUB_PARAMETERS["GitHubConnectionArn"]
    sids = {s.get("Sid") for p in github for s in p["PolicyDocument"]["Statement"]}
    assert "PullTheImagesRepository" not in sids


def test_sub_escapes_and_getatt_resolve():
    bake = roles.named_roles()["BakeRole"]
    sessions = statement(bake, "OwnSessionsOnly")
    # ${!aws:userid} in Fn::Sub is the literal policy variable ${aws:userid}
    assert "${aws:userid}" in json.dumps(sessions)
    assert "${!" not in json.dumps(bake)
    stack = roles.Stack(roles.load())
    assert statement(bake, "PassOnlyTheInstanceRole")["Resource"] == stack.getatt(
        "InstanceRole", "Arn"
    )
    assert stack.getatt("InstanceRole", "Arn").startswith(
        "arn:aws:iam::123456789012:role/"
    )
    assert stack.getatt("WinRmSecurityGroup", "GroupId").startswith("sg-")


def test_no_value_is_dropped():
    trigger = roles.named_roles()["TriggerRole"]
    text = json.dumps(trigger)
    assert "AWS::NoValue" not in text and "null" not in text


def test_managed_policies_come_from_the_documented_fixture():
    instance = roles.named_roles()["InstanceRole"]
    assert [p["PolicyName"] for p in instance] == ["AmazonSSMManagedInstanceCore"]
    actions = {
        a for s in instance[0]["PolicyDocument"]["Statement"] for a in s["Action"]
    }
    assert (
        "ssmmessages:OpenDataChannel" in actions
        and "ssm:UpdateInstanceInformation" in actions
    )
    with pytest.raises(KeyError, match="not in aws-managed-policies.json"):
        roles._managed_policy("arn:aws:iam::aws:policy/AdministratorAccess")


def test_a_parameter_without_a_default_must_be_given():
    template = roles.load()
    template["Parameters"]["Unset"] = {"Type": "String"}
    with pytest.raises(ValueError, match="Unset has no default"):
        roles.Stack(template)
    with pytest.raises(ValueError, match="unknown parameters"):
        roles.Stack(roles.load(), {"NoSuchParameter": "x"})


def test_names_are_those_of_the_deployed_stack_when_cfn_is_there():
    if roles._cfn is None:
        pytest.skip("tests/twin/cfn.py is not importable here")
    stack = roles.Stack(roles.load())
    ctx = roles._cfn.Context(roles.load(), dict(stack.parameters))
    assert stack.ref("Ledger") == roles._cfn.physical_id(ctx, "Ledger")
    assert stack.getatt("BakeRole", "Arn") == roles._cfn.attribute(
        ctx, "BakeRole", "Arn"
    )


def test_the_fallback_resolver_resolves_the_build_roles(monkeypatch):
    monkeypatch.setattr(roles, "_cfn", None)
    for params in roles.variants().values():
        resolved = roles.named_roles(parameters=params)
        text = json.dumps([resolved["BakeRole"], resolved["TestRole"]])
        assert "Fn::" not in text and "Ref" not in text
        # the only ${...} left are IAM policy variables
        assert set(re.findall(r"\$\{([^}]+)\}", text)) <= {"aws:userid"}
