"""Unit tests of tests/twin/cfn.py: load, translate and resolve.

Expected values are written from the CloudFormation documentation (the
intrinsic function reference and each type's "Return values"), not from
what cfn.py happens to print.
"""

from __future__ import annotations

import textwrap

import pytest

from twin import cfn

TEMPLATE = textwrap.dedent(
    """\
    AWSTemplateFormatVersion: 2010-09-09
    Parameters:
      Prefix: {Type: String, Default: gild}
      Reserve: {Type: Number, Default: 0}
      Flag: {Type: String, Default: "true", AllowedValues: ["true", "false"]}
      Zones: {Type: CommaDelimitedList, Default: "a,b"}
      Adopt: {Type: String, Default: ""}
    Conditions:
      Reserving: !Not [!Equals [!Ref Reserve, 0]]
      FlagOn: !Equals [!Ref Flag, "true"]
      Both: !And [!Condition FlagOn, !Condition Reserving]
      Either: !Or [!Condition FlagOn, !Condition Reserving]
      Create: !Equals [!Ref Adopt, ""]
    Resources:
      Role:
        Type: AWS::IAM::Role
        Properties: {Path: /service/, AssumeRolePolicyDocument: {}}
      Table:
        Type: AWS::DynamoDB::Table
        Condition: Create
        Properties: {TableName: !Sub "${Prefix}-ledger"}
      Queue: {Type: AWS::SQS::Queue, Properties: {QueueName: !Sub "${Prefix}-dlq"}}
      Topic: {Type: AWS::SNS::Topic}
      Key: {Type: AWS::KMS::Key}
      Bucket: {Type: AWS::S3::Bucket}
      Fn:
        Type: AWS::Lambda::Function
        Properties:
          FunctionName: !Sub ${Prefix}-trigger
          Role: !GetAtt Role.Arn
          ReservedConcurrentExecutions: !If [Reserving, !Ref Reserve, !Ref AWS::NoValue]
          Layers: [!If [FlagOn, !Ref AWS::NoValue, layer-arn], kept]
          Env:
            Table: !If [Create, !Ref Table, !Ref Adopt]
            Literal: !Sub "${!NotAVar}-${AWS::Region}"
            Mapped: !Sub ["${Q}/${Topic.TopicName}", {Q: !GetAtt Queue.Arn}]
            Joined: !Join ["-", [!Select [1, !Ref Zones], !Select [0, !Split [",", "x,y"]]]]
    """
)


@pytest.fixture
def template() -> dict:
    return cfn.loads(TEMPLATE)


def ctx_of(template: dict, **params: object) -> cfn.Context:
    return cfn.Context(template, params, region="eu-west-1", account="111122223333")


def test_load_turns_short_forms_into_long_forms(template: dict) -> None:
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"  # not a date
    props = template["Resources"]["Fn"]["Properties"]
    assert props["Role"] == {"Fn::GetAtt": ["Role", "Arn"]}
    assert props["Env"]["Mapped"]["Fn::Sub"][1] == {
        "Q": {"Fn::GetAtt": ["Queue", "Arn"]}
    }
    assert template["Conditions"]["Both"] == {
        "Fn::And": [{"Condition": "FlagOn"}, {"Condition": "Reserving"}]
    }
    dotted = cfn.loads("X: !GetAtt Res.Attr.With.Dots")
    assert dotted == {"X": {"Fn::GetAtt": ["Res", "Attr.With.Dots"]}}


def test_conditions_follow_parameters(template: dict) -> None:
    assert cfn.conditions_true(ctx_of(template)) == {"FlagOn", "Either", "Create"}
    on = ctx_of(template, Reserve=2, Flag="false", Adopt="old-table")
    assert cfn.conditions_true(on) == {"Reserving", "Either"}


def test_no_value_removes_the_property_and_list_item(template: dict) -> None:
    props = cfn.resolved_resources(ctx_of(template))["Fn"]["Properties"]
    assert "ReservedConcurrentExecutions" not in props
    assert props["Layers"] == ["kept"]
    reserved = cfn.resolved_resources(ctx_of(template, Reserve=3, Flag="false"))
    assert reserved["Fn"]["Properties"]["ReservedConcurrentExecutions"] == "3"
    assert reserved["Fn"]["Properties"]["Layers"] == ["layer-arn", "kept"]


def test_sub_join_select_split_and_arns(template: dict) -> None:
    ctx = ctx_of(template)
    env = cfn.resolved_resources(ctx)["Fn"]["Properties"]["Env"]
    assert env["Table"] == "gild-ledger"
    assert env["Literal"] == "${NotAVar}-eu-west-1"
    topic = cfn.resource_name(ctx, "Topic")
    assert env["Mapped"] == f"arn:aws:sqs:eu-west-1:111122223333:gild-dlq/{topic}"
    assert env["Joined"] == "b-x"
    role = cfn.resolve({"Fn::GetAtt": ["Role", "Arn"]}, ctx)
    assert role.startswith("arn:aws:iam::111122223333:role/service/gild-Role-")
    assert cfn.resolve({"Ref": "Queue"}, ctx) == (
        "https://sqs.eu-west-1.amazonaws.com/111122223333/gild-dlq"
    )
    assert (
        cfn.resolve({"Ref": "Topic"}, ctx)
        == f"arn:aws:sns:eu-west-1:111122223333:{topic}"
    )
    key = cfn.resolve({"Ref": "Key"}, ctx)
    assert cfn.resolve({"Fn::GetAtt": ["Key", "Arn"]}, ctx) == (
        f"arn:aws:kms:eu-west-1:111122223333:key/{key}"
    )
    bucket = cfn.resolve({"Ref": "Bucket"}, ctx)
    assert bucket == bucket.lower()
    assert (
        cfn.resolve({"Fn::GetAtt": ["Bucket", "Arn"]}, ctx) == f"arn:aws:s3:::{bucket}"
    )
    assert cfn.resolve({"Fn::GetAtt": ["Fn", "Arn"]}, ctx) == (
        "arn:aws:lambda:eu-west-1:111122223333:function:gild-trigger"
    )
    assert cfn.resolve({"Fn::GetAtt": ["Table", "Arn"]}, ctx) == (
        "arn:aws:dynamodb:eu-west-1:111122223333:table/gild-ledger"
    )


def test_pseudo_parameters() -> None:
    ctx = cfn.Context({}, region="cn-north-1", account="123", stack_name="s")
    got = cfn.resolve(
        {
            "Fn::Sub": "${AWS::Partition}|${AWS::URLSuffix}|${AWS::StackName}|${AWS::AccountId}"
        },
        ctx,
    )
    assert got == "aws-cn|amazonaws.com.cn|s|123"
    assert cfn.resolve({"Ref": "AWS::StackId"}, ctx).startswith(
        "arn:aws-cn:cloudformation:cn-north-1:123:stack/s/"
    )


def test_names_are_deterministic_and_per_stack(template: dict) -> None:
    one, again = ctx_of(template), ctx_of(template)
    other = cfn.Context(template, stack_name="other")
    assert cfn.resource_name(one, "Topic") == cfn.resource_name(again, "Topic")
    assert cfn.resource_name(one, "Topic") != cfn.resource_name(other, "Topic")


def test_ref_to_a_resource_whose_condition_is_false_is_refused(template: dict) -> None:
    ctx = ctx_of(template, Adopt="kept-table")
    assert "Table" not in cfn.resolved_resources(ctx)
    with pytest.raises(ValueError, match="condition is false"):
        cfn.resolve({"Ref": "Table"}, ctx)
    env = cfn.resolved_resources(ctx)["Fn"]["Properties"]["Env"]
    assert env["Table"] == "kept-table"


def test_unmodelled_attribute_fails_loudly(template: dict) -> None:
    with pytest.raises(KeyError, match="does not model"):
        cfn.resolve({"Fn::GetAtt": ["Topic", "Nonsense"]}, ctx_of(template))


SAM = textwrap.dedent(
    """\
    Transform: AWS::Serverless-2016-10-31
    Parameters:
      Memory: {Type: Number, Default: 512}
    Resources:
      Hello:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: ../functions/hello
          Handler: bootstrap
          Runtime: provided.al2023
          MemorySize: !Ref Memory
          Events:
            Monthly: {Type: Schedule, Properties: {Schedule: "cron(0 3 9 * ? *)"}}
    """
)


def test_translate_runs_the_sam_transform() -> None:
    out = cfn.translate(cfn.loads(SAM), {}, region="eu-west-1", account="111122223333")
    resources = out["Resources"]
    assert resources["Hello"]["Type"] == "AWS::Lambda::Function"
    assert resources["Hello"]["Properties"]["Code"]["S3Bucket"] == cfn.ARTIFACT_BUCKET
    # SAM adds the execution role and the schedule's rule and permission.
    assert resources["HelloRole"]["Type"] == "AWS::IAM::Role"
    assert resources["HelloMonthly"]["Type"] == "AWS::Events::Rule"
    assert resources["HelloMonthlyPermission"]["Type"] == "AWS::Lambda::Permission"
    ctx = cfn.Context(out, region="eu-west-1", account="111122223333")
    hello = cfn.resolved_resources(ctx)["Hello"]["Properties"]
    assert hello["MemorySize"] == "512"
    assert hello["Role"].startswith("arn:aws:iam::111122223333:role/gild-HelloRole-")
    assert "Transform" not in out
