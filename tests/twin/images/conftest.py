"""Shared fixtures of the images checks: the repository root, and the
parsing helpers of tools/ (packer_hcl, pins_check) on the import path."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tools"))


@pytest.fixture
def root() -> Path:
    return ROOT
