"""The fixture of build-time API calls, resolved into requests to evaluate.

tests/fixtures/packer-amazon-calls.json lists, per call, what AWS
authorizes; this module turns each authorization into (action, resource ARN,
request context) for a given stack and role, the same way for every test.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .roles import REPO, Stack

FIXTURE = REPO / "tests" / "fixtures" / "packer-amazon-calls.json"

# The prefix each service uses for tags of existing resources, besides the
# global aws:ResourceTag/ (EC2 and Systems Manager's authorization reference).
RESOURCE_TAG_PREFIXES = {
    "ec2": ("aws:ResourceTag/", "ec2:ResourceTag/"),
    "ssm": ("aws:ResourceTag/", "ssm:resourceTag/"),
    "ssmmessages": ("aws:ResourceTag/", "ssm:resourceTag/"),
}


@dataclass(frozen=True)
class Request:
    """One authorization AWS makes for one call."""

    call_id: str
    source: str
    action: str
    resource: str
    context: dict
    why: str = ""

    def describe(self) -> str:
        text = f"{self.call_id}: {self.action} on {self.resource} ({self.source})"
        return text + (f" [{self.why}]" if self.why else "")


def load(path: Path | str = FIXTURE) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def role_id(logical_id: str) -> str:
    """A made-up unique role id (AROA + 17 characters), stable per role."""
    return "AROA" + hashlib.sha256(logical_id.encode()).hexdigest()[:17].upper()


def _sub(stack: Stack, text: str, variables: dict) -> str:
    # Policy-variable-looking names the fixture does not define (none today)
    # would be an error in Stack.sub: the fixture must say every value.
    return stack.sub(text, variables)


def requests(
    stack: Stack, role: str, fixture: dict | None = None, builds: set[str] | None = None
) -> list[Request]:
    """Every authorization of every call the fixture gives ``role``."""
    fixture = fixture or load()
    variables = dict(fixture["examples"])
    variables["RoleName"] = stack.ref(role)
    variables["RoleId"] = role_id(role)
    principal = {
        k: _sub(stack, v, variables) for k, v in fixture["principal"]["context"].items()
    }
    principal["aws:RequestedRegion"] = stack.region
    tag_sets = {
        name: {k: _sub(stack, v, variables) for k, v in spec["tags"].items()}
        for name, spec in fixture["tag_sets"].items()
    }
    out = []
    for call in fixture["calls"]:
        if call["role"] != role or (builds and not builds & set(call["builds"])):
            continue
        for auth in call["authorizes"]:
            service = auth["action"].split(":", 1)[0]
            context = dict(principal)
            if "request_tags" in auth:
                tags = tag_sets[auth["request_tags"]]
                context.update({f"aws:RequestTag/{k}": v for k, v in tags.items()})
                context["aws:TagKeys"] = sorted(tags)
            if "resource_tags" in auth:
                for prefix in RESOURCE_TAG_PREFIXES.get(service, ("aws:ResourceTag/",)):
                    context.update(
                        {
                            f"{prefix}{k}": v
                            for k, v in tag_sets[auth["resource_tags"]].items()
                        }
                    )
            context.update(
                {
                    k: _sub(stack, str(v), variables)
                    for k, v in auth.get("context", {}).items()
                }
            )
            resource = (
                auth["resource"]
                if auth["resource"] == "*"
                else _sub(stack, auth["resource"], variables)
            )
            out.append(
                Request(
                    call["id"],
                    call["source"],
                    auth["action"],
                    resource,
                    context,
                    auth.get("why", ""),
                )
            )
    return out


def unresolved(text: str) -> list[str]:
    """Template variables left in a resolved string (there should be none)."""
    return re.findall(r"\$\{[^}]+\}", text)
