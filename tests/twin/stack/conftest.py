"""Shared fixtures: which template, the network parameters, a moto server.

GILD_TWIN_TEMPLATE picks the template (default infra/template.yaml), so the
same checks can be shown failing on an older one, e.g.
`git show 1bfdd4d:infra/template.yaml > /tmp/old.yaml`.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from twin.stack.moto_server import moto_server

REPO = Path(__file__).resolve().parents[3]

# VpcId, SubnetId and SecurityGroupId have no default (the deployer names
# their own); any well-formed ids do for the emulator.
NETWORK = {
    "VpcId": "vpc-0123456789abcdef0",
    "SubnetId": "subnet-0123456789abcdef0",
    "SecurityGroupId": "sg-0123456789abcdef0",
}

# A GitHub-hosted repository (IsGitHub): what the webhook and its secrets need.
GITHUB = {
    "SourceType": "GITHUB",
    "GitHubConnectionArn": "arn:aws:codeconnections:us-east-1:123456789012:connection/abc",
    "GitHubRepository": "example/images",
}


@pytest.fixture(scope="session")
def template_path() -> Path:
    return Path(os.environ.get("GILD_TWIN_TEMPLATE", REPO / "infra" / "template.yaml"))


@pytest.fixture(scope="session")
def moto_session() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def moto(moto_session: str) -> str:
    """The session's moto server, emptied first: a test's account is its own.

    POST /moto-api/reset drops every backend's state (moto's documented
    reset endpoint), which is much cheaper than a new server per test.
    """
    request = urllib.request.Request(f"{moto_session}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    return moto_session
