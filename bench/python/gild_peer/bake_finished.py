"""bake-finished, for a succeeded bake: verify and tag the AMI and its
snapshots, then start its test build, one ledger-locked step at a time.

Per step: dynamodb.GetItem, dynamodb.UpdateItem (lock), the work,
dynamodb.UpdateItem (advance); a last GetItem finds nothing more to do.
Tag step: ec2.DescribeImages, ec2.CreateTags (AMI + snapshots).
Test step: codebuild.StartBuild (test project), ec2.CreateTags (gild:state).
A failed bake (cleanup and announcement) is not mirrored: it raises.
"""

import time

from .common import (
    DEFAULT_LEASE_SECS,
    client,
    invocation_token,
    log,
    optional,
    plain,
    required,
    short_build_id,
)
from .ledger import Ledger, idempotency_token

# Read once at cold start; a missing variable fails the init, naming it.
BAKE_PROJECT = required("GILD_BAKE_PROJECT")
TEST_PROJECT = required("GILD_TEST_PROJECT")
TOPIC_ARN = required("GILD_TOPIC_ARN")
LEASE_SECS = optional("GILD_LEASE_SECS", DEFAULT_LEASE_SECS)

ledger = Ledger(client("dynamodb"), required("GILD_LEDGER_TABLE"))
ec2 = client("ec2")
codebuild = client("codebuild")
sns = client("sns")  # failure announcements

IMAGE_GONE = ("InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable")
FAILURES = ("FAILED", "FAULT", "STOPPED", "TIMED_OUT")


class Busy(Exception):
    """Another invocation holds the bake's lock; Lambda retries the event."""


class BakeFailed(Exception):
    """The bake must be failed and cleaned up: not mirrored by the peer."""


def _vars(entries):
    return {v["name"]: v.get("value", "") for v in entries or [] if v.get("value", "").strip()}


def fnv1a(text):
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def tag_baked(record, finished):
    build = short_build_id(finished["build_id"])
    image_id = finished["image"]
    if image_id is None:  # the event lacks exported variables: ask CodeBuild
        builds = codebuild.batch_get_builds(ids=[build])
        found = [b for b in builds["builds"] if b["id"] == build]
        if not found or builds.get("buildsNotFound"):
            raise RuntimeError(f"CodeBuild knows no build `{build}`")
        image_id = _vars(found[0].get("exportedEnvironmentVariables")).get("GILD_AMI_ID")
    if image_id is None:
        raise BakeFailed(f"bake build {build} succeeded but exported no GILD_AMI_ID")
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ec2.exceptions.ClientError as err:
        if err.response["Error"]["Code"] not in IMAGE_GONE:
            raise
        images = []
    image = next((i for i in images if i["ImageId"] == image_id), None)
    if image is None:
        raise BakeFailed(f"image {image_id} exported by build {build} does not exist")
    tags = {t["Key"]: t.get("Value", "") for t in image.get("Tags", [])}
    if tags.get("gild:managed") != "true" or short_build_id(tags.get("gild:build-id", "")) != build:
        raise BakeFailed(f"image {image_id} is not tagged gild:managed=true and gild:build-id={build}")
    provenance = [
        ("gild:managed", "true"),
        ("gild:family", record["family"]),
        ("gild:trigger", record["trigger"]),
        ("gild:source-commit", record.get("commit") or finished["commit"] or "unknown"),
        ("gild:build-id", build),
        ("gild:build-log", finished["log_link"] or "unknown"),
        ("gild:base-ami", finished["base_image"] or tags.get("gild:base-ami") or "unknown"),
        ("gild:state", "baked"),
        ("gild:created-at", finished["at"]),
    ]
    snapshots = [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")]
    ec2.create_tags(
        Resources=[image_id, *snapshots],
        Tags=[{"Key": k, "Value": v[:256]} for k, v in provenance],
    )
    return "baked", {"image": image_id}


def start_test(record, finished):
    image = record.get("image") or ""
    commit = record.get("commit")
    token = f"test-{idempotency_token(record['family'], record['dedupe_key'])}-{fnv1a(image):016x}"
    variables = [
        ("GILD_FAMILY", record["family"]),
        ("GILD_AMI_ID", image),
        ("GILD_DEDUPE_KEY", record["dedupe_key"]),
    ]
    extra = {}
    if commit:
        variables.append(("GILD_SOURCE_COMMIT", commit))
        extra["sourceVersion"] = commit
    test_build = codebuild.start_build(
        projectName=TEST_PROJECT,
        idempotencyToken=token,
        environmentVariablesOverride=plain(variables),
        **extra,
    )["build"]["id"]
    ec2.create_tags(Resources=[image], Tags=[{"Key": "gild:state", "Value": "testing"}])
    return "testing", {"test_build_id": test_build}


# The work a succeeded bake calls for, by the bake's state.
WORK = {"baking": tag_baked, "baked": start_test}


def handler(event, context):
    now = int(time.time())
    report = {"event": event.get("detail-type"), "reached": []}
    if event.get("source") != "aws.codebuild" or event.get("detail-type") != "CodeBuild Build State Change":
        return {**report, "noop": "not a CodeBuild build state change"}
    detail = event["detail"]
    info = detail.get("additional-information") or {}
    env = _vars((info.get("environment") or {}).get("environment-variables"))
    exported = _vars(info.get("exported-environment-variables"))
    report["build_id"] = detail["build-id"]
    if detail["project-name"] != BAKE_PROJECT:
        return {**report, "noop": f"project `{detail['project-name']}` is not the bake project"}
    status = detail["build-status"]
    if status in FAILURES:
        raise BakeFailed(f"bake build {detail['build-id']} {status}: cleanup is not mirrored by the Python peer")
    if status != "SUCCEEDED":
        return {**report, "noop": f"build {detail['build-id']} is {status}: only completed builds matter"}
    family = env.get("GILD_FAMILY") or exported.get("GILD_FAMILY")
    dedupe_key = env.get("GILD_DEDUPE_KEY")
    report["family"] = family
    if not family or not dedupe_key:
        return {**report, "noop": "build carries no GILD_FAMILY/GILD_DEDUPE_KEY: not started by gild"}
    finished = {
        "build_id": detail["build-id"],
        "image": exported.get("GILD_AMI_ID"),
        "base_image": exported.get("GILD_BASE_AMI"),
        "commit": env.get("GILD_SOURCE_COMMIT") or info.get("source-version"),
        "log_link": (info.get("logs") or {}).get("deep-link"),
        "at": event["time"],
    }
    owner = invocation_token()
    while True:
        record = ledger.get(family, dedupe_key)
        if record is None:
            return {**report, "noop": f"no ledger record for {family} {dedupe_key}"}
        if short_build_id(record.get("build_id") or "") != short_build_id(finished["build_id"]):
            return {**report, "noop": f"build {finished['build_id']} is not the bake's bake build"}
        state = record["state"]
        work = WORK.get(state)
        if work is None:
            if report["reached"]:
                return report
            return {**report, "noop": f"bake is {state}: duplicate or out-of-order event"}
        if not ledger.lock(family, dedupe_key, state, now, LEASE_SECS, owner):
            again = ledger.get(family, dedupe_key)
            if again and again["state"] == state:
                raise Busy(f"bake {family} {dedupe_key} is being handled by another invocation; retry later")
            continue
        try:
            to, change = work(record, finished)
        except Exception:
            ledger.release(family, dedupe_key, state)
            raise
        if not ledger.advance(family, dedupe_key, state, to, change, now):
            found = ledger.get(family, dedupe_key)
            log.warning("%s: advance %s -> %s reported no change; found %s", family, state, to, found and found["state"])
            if found and found["state"] == to:
                report["reached"].append(to)
            continue
        log.info("%s %s: %s -> %s", family, dedupe_key, state, to)
        report["reached"].append(to)
