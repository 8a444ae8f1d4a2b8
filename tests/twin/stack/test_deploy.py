"""The stack deploys into moto, and nothing moto cannot create vanishes silently."""

from __future__ import annotations

from pathlib import Path

import pytest
from moto.cloudformation.parsing import resource_class_from_type

from twin import cfn
from twin.stack import deploy
from twin.stack.conftest import GITHUB, NETWORK

VARIANTS = {
    "defaults": {},
    "github+slack": {
        **GITHUB,
        "SlackEnabled": "true",
        "NotificationEmail": "ops@example.com",
    },
}


def test_unsupported_list_matches_moto(template_path: Path) -> None:
    """Every type of the translated template is either modelled by moto or listed."""
    translated = cfn.translate(cfn.load(template_path), NETWORK)
    types = {res["Type"] for res in translated["Resources"].values()}
    unmodelled = {t for t in types if resource_class_from_type(t) is None}
    assert unmodelled <= set(deploy.UNSUPPORTED), unmodelled - set(deploy.UNSUPPORTED)
    # A listed type moto gained a model for should be deployed, not stripped.
    modelled_but_listed = {t for t in deploy.UNSUPPORTED if resource_class_from_type(t)}
    assert not modelled_but_listed


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_resource_is_deployed_or_listed(
    moto: str, template_path: Path, variant: str
) -> None:
    params = {**NETWORK, **VARIANTS[variant]}
    result = deploy.deploy(moto, template_path, params)
    assert result.status == "CREATE_COMPLETE"
    translated = cfn.translate(cfn.load(template_path), params)
    ctx = cfn.Context(translated, params)
    present = {lid for lid in translated["Resources"] if ctx.exists(lid)}
    stripped = {s["LogicalId"] for s in result.stripped}
    assert set(result.resources) | stripped == present
    assert not set(result.resources) & stripped
    for entry in result.stripped:
        assert entry["Reason"] == deploy.strip_reason(entry["Type"])
    # The outputs moto computed are the ones the template declares.
    assert set(result.outputs) == set(cfn.outputs(ctx))
    # Each rule targets a function of this stack.
    for rule in result.rules.values():
        for target in rule["Targets"]:
            assert translated["Resources"][target]["Type"] == "AWS::Lambda::Function"


def test_functions_carry_the_template_configuration(
    moto: str, template_path: Path
) -> None:
    result = deploy.deploy(moto, template_path, dict(NETWORK))
    lam = deploy.clients(moto, "us-east-1")["lambda"]
    trigger = lam.get_function_configuration(
        FunctionName=result.outputs["TriggerFunction"]
    )
    env = trigger["Environment"]["Variables"]
    assert env["GILD_LEDGER_TABLE"] == result.outputs["LedgerTable"]
    assert env["GILD_BAKE_PROJECT"] == result.outputs["BakeProject"]
    assert trigger["Runtime"] == "provided.al2023"


def test_undeclared_parameter_is_refused(template_path: Path) -> None:
    # Refused before any call, as CloudFormation refuses it: no server needed.
    with pytest.raises(deploy.DeployError, match="NoSuchParameter"):
        deploy.deploy(
            "http://127.0.0.1:9", template_path, {**NETWORK, "NoSuchParameter": "x"}
        )


def test_custom_resources_are_kept_for_the_harness(
    moto: str, template_path: Path
) -> None:
    """The approval-rule template is stripped from moto's stack and kept in
    stack.json as CloudFormation would send it to its function."""
    result = deploy.deploy(moto, template_path, dict(NETWORK))
    custom = result.custom_resources["ApprovalRuleTemplate"]
    assert custom["Type"] == "Custom::ApprovalRuleTemplate"
    assert custom["Function"] == "ApprovalTemplate"
    props = custom["Properties"]
    # Numbers arrive as strings, as from CloudFormation.
    assert props["ServiceTimeout"] == "300"
    assert props["Branch"] == "main"
    assert props["TemplateName"] == "gild-requires-gild"
    trigger_env = result.functions["Trigger"]["Environment"]
    assert props["RepositoryName"] == trigger_env["GILD_REPOSITORY"]
    role = result.resources["ReviewerRole"]["PhysicalId"]
    assert props["ReviewerRoleArn"] == f"arn:aws:iam::123456789012:role/{role}"
    assert "ApprovalTemplate" in result.functions
