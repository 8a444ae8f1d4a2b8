"""Defect 1: reserved concurrency the account cannot give.

Lambda refuses a reservation that leaves the account fewer than 100
unreserved concurrent executions. Checked at the source: the Lambda API
reference, PutFunctionConcurrency ("You can reserve concurrency for as many
functions as you like, as long as you leave at least 100 simultaneous
executions unreserved ... Use GetAccountSettings to see your Regional
concurrency limit"; https://docs.amazonaws.cn/goto/WebAPI/lambda-2015-03-31/PutFunctionConcurrency),
and the error Lambda answers, which moto copies (moto/awslambda/models.py,
put_function_concurrency): "Specified ReservedConcurrentExecutions for
function decreases account's UnreservedConcurrentExecution below its
minimum value of [100]". New
accounts often start with a ConcurrentExecutions quota of 10, where no
reservation at all is possible.

Two checks: the account modelled by arithmetic over the template (under
its parameter defaults, and with each optional function turned on), and
the same through the emulator: moto refuses PutFunctionConcurrency the same
way when started with MOTO_LAMBDA_CONCURRENCY_QUOTA.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from twin import cfn
from twin.stack import deploy
from twin.stack.conftest import NETWORK
from twin.stack.moto_server import moto_server

UNRESERVED_MINIMUM = 100
QUOTAS = (10, 1000)

# Default parameters, and the defaults with the optional functions on: a
# deployer who only switches a feature on must not hit the refusal either.
SETTINGS = {
    "defaults": {},
    "github+slack": {
        "SourceType": "GITHUB",
        "GitHubConnectionArn": "arn:aws:codeconnections:us-east-1:123456789012:connection/abc",
        "GitHubRepository": "example/images",
        "SlackEnabled": "true",
    },
}


def reservations(template_path: Path, params: dict[str, str]) -> dict[str, int]:
    """ReservedConcurrentExecutions of each function the stack creates."""
    translated = cfn.translate(cfn.load(template_path), params)
    ctx = cfn.Context(translated, params)
    out = {}
    for lid, res in cfn.resolved_resources(ctx).items():
        if res["Type"] == "AWS::Lambda::Function":
            reserved = res["Properties"].get("ReservedConcurrentExecutions")
            if reserved is not None:
                out[lid] = int(reserved)
    return out


def refused(quota: int, reserved: dict[str, int]) -> bool:
    """Whether Lambda would refuse one of these reservations in that account."""
    return bool(reserved) and quota - sum(reserved.values()) < UNRESERVED_MINIMUM


def test_the_model_matches_lambdas_rule() -> None:
    """The arithmetic, on cases worked out by hand from the documented rule."""
    assert not refused(10, {})
    assert refused(10, {"Trigger": 1})
    assert refused(1000, {"A": 901})
    assert not refused(1000, {"A": 900})
    assert not refused(1000, {"A": 2, "B": 5, "C": 1})


@pytest.mark.parametrize("quota", QUOTAS)
@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_reservations_fit_the_account(
    template_path: Path, quota: int, setting: str
) -> None:
    reserved = reservations(template_path, {**NETWORK, **SETTINGS[setting]})
    assert not refused(quota, reserved), (
        f"with a ConcurrentExecutions quota of {quota}, reserving {reserved} "
        f"(total {sum(reserved.values())}) leaves {quota - sum(reserved.values())} "
        f"unreserved; Lambda requires {UNRESERVED_MINIMUM}"
    )


@pytest.mark.parametrize("quota", QUOTAS)
def test_the_emulator_accepts_the_deploy(template_path: Path, quota: int) -> None:
    """moto, told the account's quota, refuses what Lambda would refuse."""
    params = {**NETWORK, **SETTINGS["github+slack"]}
    expect_refusal = refused(quota, reservations(template_path, params))
    with moto_server({"MOTO_LAMBDA_CONCURRENCY_QUOTA": str(quota)}) as endpoint:
        try:
            deploy.deploy(endpoint, template_path, params)
        except deploy.DeployError as err:
            assert expect_refusal, f"the model expected no refusal, moto said: {err}"
            pytest.fail(f"quota {quota}: {err}")
        assert not expect_refusal, "the model expected a refusal, moto accepted"
