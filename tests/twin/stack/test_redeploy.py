"""Defect 2: a second deploy after `sam delete` into the same account.

`sam delete` deletes the stack; resources with DeletionPolicy Retain stay
in the account (CloudFormation user guide, "DeletionPolicy attribute").
moto keeps them too (moto/cloudformation/parsing.py, ResourceMap.delete
skips Retain), and deploy.py keeps the CodeCommit repository it creates
beside the stack when it is Retain. A retained resource with a fixed name
then collides with the one the next deploy creates, unless that deploy
adopts it (ExistingLedgerTableName, CreateRepository=false).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from twin import cfn
from twin.stack import deploy
from twin.stack.conftest import NETWORK


def _deploy(
    endpoint: str, template_path: Path, params: dict[str, str]
) -> deploy.Deployment:
    try:
        return deploy.deploy(endpoint, template_path, {**NETWORK, **params})
    except deploy.DeployError as err:
        pytest.fail(f"deploy with {params or 'the defaults'} refused: {err}")


def _first_deploy_and_delete(
    endpoint: str, template_path: Path
) -> tuple[deploy.Deployment, list[str]]:
    first = _deploy(endpoint, template_path, {})
    kept = deploy.delete(endpoint, first)
    return first, kept


def test_moto_keeps_retained_resources(moto: str, template_path: Path) -> None:
    """The premise: after delete, the Retain ledger (if any) is still a table."""
    first, _kept = _first_deploy_and_delete(moto, template_path)
    ledger = first.resources.get("Ledger")
    if ledger is None:
        pytest.skip("no Ledger created under the defaults")
    tables = deploy.clients(moto, "us-east-1")["dynamodb"].list_tables()["TableNames"]
    assert ledger["PhysicalId"] in tables


def test_redeploy_with_the_defaults(moto: str, template_path: Path) -> None:
    """`sam deploy` again, same parameters, after `sam delete`."""
    _first_deploy_and_delete(moto, template_path)
    _deploy(moto, template_path, {})


def test_redeploy_keeping_the_repository(moto: str, template_path: Path) -> None:
    """The documented way to keep the repository; the ledger left at its default."""
    _first_deploy_and_delete(moto, template_path)
    _deploy(moto, template_path, {"CreateRepository": "false"})


def test_redeploy_adopting_what_was_kept(moto: str, template_path: Path) -> None:
    """The second stack uses the kept ledger and repository instead of new ones."""
    raw = cfn.load(template_path)
    if "ExistingLedgerTableName" not in (raw.get("Parameters") or {}):
        pytest.fail(
            "the template has no ExistingLedgerTableName: a kept ledger cannot be adopted"
        )
    first, kept = _first_deploy_and_delete(moto, template_path)
    ledger = first.resources["Ledger"]["PhysicalId"]
    assert "Repository" in kept
    second = _deploy(
        moto,
        template_path,
        {"ExistingLedgerTableName": ledger, "CreateRepository": "false"},
    )
    assert "Ledger" not in second.resources
    assert second.outputs["LedgerTable"] == ledger
    lam = deploy.clients(moto, "us-east-1")["lambda"]
    for output in ("TriggerFunction", "BakeFinishedFunction", "TestFinishedFunction"):
        env = lam.get_function_configuration(FunctionName=second.outputs[output])
        variables = env["Environment"]["Variables"]
        if "GILD_LEDGER_TABLE" in variables:
            assert variables["GILD_LEDGER_TABLE"] == ledger, output


def _adopt_switches(raw: dict) -> list[dict[str, str]]:
    """One-parameter changes from the defaults a deployer could make to adopt."""
    out = []
    for name, spec in (raw.get("Parameters") or {}).items():
        default = cfn.parameter_values(raw).get(name)
        for value in spec.get("AllowedValues", []):
            if (
                cfn.parameter_values({"Parameters": {name: {"Default": value}}})[name]
                != default
            ):
                out.append({name: value})
        if default == "" and "AllowedValues" not in spec:
            out.append({name: "kept-by-a-deleted-stack"})
    return out


def test_retained_resources_never_collide(template_path: Path) -> None:
    """Static: each Retain resource has a generated name, or a parameter that adopts it."""
    raw = cfn.load(template_path)
    translated = cfn.translate(raw, NETWORK)
    problems = []
    for lid, res in translated["Resources"].items():
        if res.get("DeletionPolicy") != "Retain":
            continue
        prop = cfn.NAME_PROPERTIES.get(res["Type"])
        if prop is None or prop not in (res.get("Properties") or {}):
            continue  # CloudFormation generates the name: never the same twice
        cond = res.get("Condition")
        adoptable = cond is not None and any(
            not cfn.Context(translated, {**NETWORK, **switch}).exists(lid)
            for switch in _adopt_switches(raw)
        )
        if not adoptable:
            problems.append(
                f"{lid} ({res['Type']}) keeps a fixed {prop} and no parameter adopts it"
            )
    assert not problems, problems
