"""The evaluator against answers AWS documents.

Sources (each case names the one it follows):
  LOGIC  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
  OPS    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
  MULTI  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
  VARS   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html
  RES    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html
  ACTION https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html
"""

import pytest

from .evaluate import evaluate

ACCOUNT = "123456789012"
KEY_PAIR = f"arn:aws:ec2:us-east-1:{ACCOUNT}:key-pair/packer_6930e2f0"


def allow(action, resource="*", condition=None, sid="A", **extra):
    statement = {"Sid": sid, "Effect": "Allow", "Resource": resource, **extra}
    if action is not None:
        statement["Action"] = action
    if condition:
        statement["Condition"] = condition
    return statement


def doc(*statements):
    return [
        {
            "PolicyName": "p",
            "PolicyDocument": {"Version": "2012-10-17", "Statement": list(statements)},
        }
    ]


def test_explicit_deny_wins_over_allow():  # LOGIC
    policies = doc(
        allow("ec2:*", sid="All"),
        {
            "Sid": "NoTerminate",
            "Effect": "Deny",
            "Action": "ec2:TerminateInstances",
            "Resource": "*",
        },
    )
    d = evaluate(
        policies, "ec2:TerminateInstances", ["arn:aws:ec2:us-east-1:1:instance/i-1"], {}
    )
    assert not d.allowed
    assert d.matched_statement_sids == ("NoTerminate",)
    assert "explicitly denied" in d.reason
    assert evaluate(
        policies, "ec2:StopInstances", ["arn:aws:ec2:us-east-1:1:instance/i-1"], {}
    ).allowed


def test_nothing_matching_is_an_implicit_deny():  # LOGIC
    d = evaluate(doc(allow("ec2:DescribeImages")), "ec2:CreateKeyPair", [KEY_PAIR], {})
    assert not d.allowed and d.matched_statement_sids == ()
    assert "implicit deny" in d.reason and KEY_PAIR in d.reason


@pytest.mark.parametrize(
    ("pattern", "action", "allowed"),
    [
        ("ec2:Describe*", "ec2:DescribeImages", True),
        ("ec2:Describe*", "ec2:CreateTags", False),
        ("ec2:describeimages", "ec2:DescribeImages", True),  # ACTION: case-insensitive
        ("ssm:*Session", "ssm:TerminateSession", True),
        ("ssm:?esumeSession", "ssm:ResumeSession", True),
    ],
)
def test_action_wildcards(pattern, action, allowed):  # ACTION
    assert evaluate(doc(allow(pattern)), action, ["*"], {}).allowed is allowed


def test_not_action_allows_everything_else():  # ACTION (NotAction)
    statement = {"Sid": "N", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
    assert evaluate(doc(statement), "ec2:RunInstances", ["*"], {}).allowed
    assert not evaluate(doc(statement), "iam:PassRole", ["*"], {}).allowed


def test_resource_arns_are_case_sensitive():  # RES
    policies = doc(
        allow("ec2:CreateKeyPair", f"arn:aws:ec2:us-east-1:{ACCOUNT}:key-pair/packer_*")
    )
    assert evaluate(policies, "ec2:CreateKeyPair", [KEY_PAIR], {}).allowed
    upper = KEY_PAIR.replace("packer_", "PACKER_")
    assert not evaluate(policies, "ec2:CreateKeyPair", [upper], {}).allowed


def test_not_resource():  # RES (NotResource)
    statement = {
        "Sid": "N",
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "NotResource": "arn:aws:s3:::secret/*",
    }
    assert evaluate(
        doc(statement), "s3:GetObject", ["arn:aws:s3:::public/a"], {}
    ).allowed
    assert not evaluate(
        doc(statement), "s3:GetObject", ["arn:aws:s3:::secret/a"], {}
    ).allowed


def test_username_variable_matches_an_iam_user_but_not_a_role():  # VARS
    policies = doc(
        allow("ssm:TerminateSession", "arn:aws:ssm:*:*:session/${aws:username}-*")
    )
    session = f"arn:aws:ssm:us-east-1:{ACCOUNT}:session/JohnDoe-1a2b3c4d5eEXAMPLE"
    user = {"aws:username": "JohnDoe", "aws:userid": "AIDAJQABLZS4A3QDU576Q"}
    assert evaluate(policies, "ssm:TerminateSession", [session], user).allowed
    # VARS: aws:username is not present for an assumed role; the variable
    # then matches nothing.
    role = {"aws:userid": "AROAEXAMPLEID:JohnDoe"}
    assert not evaluate(policies, "ssm:TerminateSession", [session], role).allowed


def test_userid_of_a_role_session_never_prefixes_its_session_id():  # VARS + defect 6
    # For an assumed role aws:userid is role-id:role-session-name (VARS,
    # "Principal key values"); the session id Session Manager makes starts with
    # the session name only.
    policies = doc(
        allow("ssm:TerminateSession", "arn:aws:ssm:us-east-1:*:session/${aws:userid}-*")
    )
    session = (
        f"arn:aws:ssm:us-east-1:{ACCOUNT}:session/AWSCodeBuild-5d6c-0a1b2c3d4e5f67890"
    )
    context = {"aws:userid": "AROA3EXAMPLEBAKE:AWSCodeBuild-5d6c"}
    assert not evaluate(policies, "ssm:TerminateSession", [session], context).allowed
    # the same pattern does match when the variable's value is the prefix
    context = {"aws:userid": "AWSCodeBuild-5d6c"}
    assert evaluate(policies, "ssm:TerminateSession", [session], context).allowed


def test_variable_in_a_condition_value():  # VARS (variables in Condition)
    policies = doc(
        allow(
            "ssm:TerminateSession",
            f"arn:aws:ssm:us-east-1:{ACCOUNT}:session/*",
            {
                "StringLike": {
                    "ssm:resourceTag/aws:ssmmessages:session-id": "${aws:userid}"
                }
            },
        )
    )
    session = f"arn:aws:ssm:us-east-1:{ACCOUNT}:session/bake-0a1b2c3d4e5f67890"
    mine = {
        "aws:userid": "AROAX:bake",
        "ssm:resourceTag/aws:ssmmessages:session-id": "AROAX:bake",
    }
    other = {
        "aws:userid": "AROAX:bake",
        "ssm:resourceTag/aws:ssmmessages:session-id": "AROAY:other",
    }
    assert evaluate(policies, "ssm:TerminateSession", [session], mine).allowed
    assert not evaluate(policies, "ssm:TerminateSession", [session], other).allowed


@pytest.mark.parametrize(
    ("condition", "context", "allowed"),
    [
        (
            {"StringEquals": {"ec2:CreateAction": "CreateKeyPair"}},
            {"ec2:CreateAction": "CreateKeyPair"},
            True,
        ),
        (
            {"StringEquals": {"ec2:CreateAction": "CreateKeyPair"}},
            {"ec2:CreateAction": "RunInstances"},
            False,
        ),
        (
            {"StringEquals": {"ec2:CreateAction": "CreateKeyPair"}},
            {},
            False,
        ),  # OPS: absent key
        (
            {"StringEquals": {"aws:RequestTag/env": "Prod"}},
            {"aws:RequestTag/env": "prod"},
            False,
        ),  # case
        (
            {"StringEqualsIgnoreCase": {"aws:RequestTag/env": "Prod"}},
            {"aws:RequestTag/env": "prod"},
            True,
        ),
        (
            {"StringEquals": {"ec2:CreateAction": ["RunInstances", "CreateKeyPair"]}},
            {"ec2:CreateAction": "CreateKeyPair"},
            True,
        ),
        (
            {"StringLike": {"aws:RequestTag/Name": "gild-*"}},
            {"aws:RequestTag/Name": "gild-debian"},
            True,
        ),
        (
            {"StringLike": {"aws:RequestTag/Name": "gild-*"}},
            {"aws:RequestTag/Name": "other"},
            False,
        ),
        (
            {"StringEqualsIfExists": {"ec2:InstanceType": "t3.small"}},
            {},
            True,
        ),  # OPS: IfExists
        (
            {"StringEqualsIfExists": {"ec2:InstanceType": "t3.small"}},
            {"ec2:InstanceType": "t3.large"},
            False,
        ),
        (
            {"StringNotEquals": {"aws:RequestTag/env": "prod"}},
            {},
            True,
        ),  # OPS: negated, absent
        (
            {"StringNotLike": {"aws:RequestTag/env": "prod*"}},
            {},
            True,
        ),  # OPS: negated, absent
        (
            {"StringNotLike": {"aws:RequestTag/env": "prod*"}},
            {"aws:RequestTag/env": "prod1"},
            False,
        ),
        ({"Null": {"aws:RequestTag/gild:managed": "true"}}, {}, True),
        ({"Null": {"aws:RequestTag/gild:managed": "false"}}, {}, False),
        (
            {"Null": {"aws:RequestTag/gild:managed": "false"}},
            {"aws:RequestTag/gild:managed": "true"},
            True,
        ),
        (
            {"Bool": {"kms:GrantIsForAWSResource": True}},
            {"kms:GrantIsForAWSResource": True},
            True,
        ),
        (
            {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            {"kms:GrantIsForAWSResource": "false"},
            False,
        ),
        ({"Bool": {"kms:GrantIsForAWSResource": "true"}}, {}, False),
        (
            {"ArnEquals": {"ec2:Subnet": "arn:aws:ec2:us-east-1:1:subnet/subnet-1"}},
            {"ec2:Subnet": "arn:aws:ec2:us-east-1:1:subnet/subnet-1"},
            True,
        ),
        (
            {
                "ArnLike": {
                    "ec2:InstanceProfile": "arn:aws:iam::1:instance-profile/gild-*"
                }
            },
            {"ec2:InstanceProfile": "arn:aws:iam::1:instance-profile/other"},
            False,
        ),
        # OPS: several keys in one block are ANDed, several blocks too
        (
            {
                "StringEquals": {
                    "ec2:MetadataHttpTokens": "required",
                    "aws:RequestTag/gild:managed": "true",
                }
            },
            {"ec2:MetadataHttpTokens": "required"},
            False,
        ),
        (
            {"NumericLessThanEquals": {"ec2:VolumeSize": "100"}},
            {"ec2:VolumeSize": "50"},
            True,
        ),
    ],
)
def test_condition_operators(condition, context, allowed):  # OPS
    d = evaluate(
        doc(allow("ec2:CreateTags", "*", condition)), "ec2:CreateTags", ["*"], context
    )
    assert d.allowed is allowed, d.reason


@pytest.mark.parametrize(
    ("condition", "keys", "allowed"),
    [
        # MULTI: ForAllValues is true when every request value matches, and
        # also when the request has no such key
        (
            {"ForAllValues:StringLike": {"aws:TagKeys": ["gild:*", "Name"]}},
            ["Name", "gild:family"],
            True,
        ),
        (
            {"ForAllValues:StringLike": {"aws:TagKeys": ["gild:*", "Name"]}},
            ["Name", "owner"],
            False,
        ),
        ({"ForAllValues:StringLike": {"aws:TagKeys": ["gild:*", "Name"]}}, None, True),
        # MULTI: ForAnyValue needs at least one match, and is false without the key
        (
            {"ForAnyValue:StringEquals": {"aws:TagKeys": ["gild:managed"]}},
            ["Name", "gild:managed"],
            True,
        ),
        (
            {"ForAnyValue:StringEquals": {"aws:TagKeys": ["gild:managed"]}},
            ["Name"],
            False,
        ),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["gild:managed"]}}, None, False),
    ],
)
def test_set_operators_on_multivalued_keys(condition, keys, allowed):  # MULTI
    context = {} if keys is None else {"aws:TagKeys": keys}
    d = evaluate(
        doc(allow("ec2:CreateTags", "*", condition)), "ec2:CreateTags", ["*"], context
    )
    assert d.allowed is allowed, d.reason


def test_every_resource_of_a_request_must_be_allowed():  # LOGIC, one request many resources
    instance = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/*"
    subnet = f"arn:aws:ec2:us-east-1:{ACCOUNT}:subnet/subnet-1"
    other_subnet = f"arn:aws:ec2:us-east-1:{ACCOUNT}:subnet/subnet-2"
    policies = doc(allow("ec2:RunInstances", [instance, subnet]))
    assert evaluate(policies, "ec2:RunInstances", [instance, subnet], {}).allowed
    d = evaluate(policies, "ec2:RunInstances", [instance, other_subnet], {})
    assert not d.allowed and d.refused_resource == other_subnet


def test_per_resource_context_and_near_misses():
    image = "arn:aws:ec2:us-east-1::image/ami-1"
    policies = doc(
        allow(
            "ec2:DeregisterImage",
            image,
            {"StringEquals": {"aws:ResourceTag/gild:managed": "true"}},
            sid="Tagged",
        )
    )
    tagged = {image: {"aws:ResourceTag/gild:managed": "true"}}
    assert evaluate(policies, "ec2:DeregisterImage", [image], {}, tagged).allowed
    d = evaluate(policies, "ec2:DeregisterImage", [image], {})
    assert not d.allowed and d.near_misses == ("Tagged",)
    assert "conditions not met in Tagged" in d.reason
