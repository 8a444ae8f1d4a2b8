"""What both handlers share: config from the environment, the SDK settings,
the invocation's owner token, and CodeBuild's environment overrides."""

import itertools
import logging
import os
import time

import boto3
from botocore.config import Config

log = logging.getLogger("gild")
log.setLevel(logging.INFO)

# As crates/aws/src/config.rs: connect 3 s, each attempt 10 s, the SDK's
# standard retry mode (3 attempts). Endpoints come from the standard settings
# (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>), which botocore reads itself.
SDK_CONFIG = Config(
    connect_timeout=3,
    read_timeout=10,
    retries={"mode": "standard", "max_attempts": 3},
)

DEFAULT_LEASE_SECS = 90


def client(service, **settings):
    """A client built once at import and shared by every invocation (and thread)."""
    return boto3.client(service, config=SDK_CONFIG.merge(Config(**settings)) if settings else SDK_CONFIG)


def required(name):
    value = os.environ.get(name, "")
    if not value.strip():
        raise RuntimeError(f"environment variable {name} is not set")
    return value


def optional(name, default):
    value = os.environ.get(name, "")
    if not value.strip():
        return default
    try:
        return type(default)(value.strip())
    except ValueError as err:
        raise RuntimeError(f"environment variable {name}=`{value}` is invalid: {err}") from None


_sequence = itertools.count()


def invocation_token():
    """Unique to this invocation: the owner of the claims and locks it takes."""
    return f"{os.getpid()}-{time.time_ns():x}-{next(_sequence)}"


def plain(variables):
    """CodeBuild `environmentVariablesOverride` entries, in the given order."""
    return [{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in variables]


def short_build_id(build_id):
    """`project:uuid` from either that or the build's ARN."""
    return build_id.rsplit("/", 1)[-1]
