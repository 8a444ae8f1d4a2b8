"""Shared fixtures of the Ansible checks' tests: the repository root, and
tools/ (ansible_catalog_check) on the import path."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tools"))


@pytest.fixture
def root() -> Path:
    return ROOT
