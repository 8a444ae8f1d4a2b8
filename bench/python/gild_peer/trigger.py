"""trigger, for the monthly schedule: one bake build per family of the
catalog at the tracked branch's tip, exactly once per family and month.
Bakes beyond gild's share of CodeBuild's concurrent-build quota wait in the
ledger as `queued` (crates/core/src/queue.rs, crates/flow/src/trigger.rs).

codecommit.GetBranch, codecommit.GetFile, dynamodb.Query (the `active`
index, every page), then per family (concurrently): dynamodb.PutItem (claim),
then with a free slot codebuild.StartBuild and dynamodb.UpdateItem (baking),
without one (or when StartBuild says the account is full) dynamodb.UpdateItem
(queued). Draining the queue on a build-ended event is not mirrored.
"""

import os
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from .common import DEFAULT_LEASE_SECS, client, invocation_token, log, optional, plain, required
from .ledger import Ledger, idempotency_token

CATALOG_FILE = "gild.toml"
DEFAULT_MAX_PARALLEL_BUILDS = 20  # queue::DEFAULT_MAX_PARALLEL_BUILDS
# CodeBuild's answers for a full account (crates/aws/src/error.rs LIMITS).
LIMITS = ("AccountLimitExceededException", "LimitExceededException")

# Read once at cold start; a missing variable fails the init, naming it.
BAKE_PROJECT = required("GILD_BAKE_PROJECT")
REPOSITORY = required("GILD_REPOSITORY")
TRACKED_BRANCH = optional("GILD_TRACKED_BRANCH", "main")
CONCURRENCY = optional("GILD_START_CONCURRENCY", 8)
LEASE_SECS = optional("GILD_LEASE_SECS", DEFAULT_LEASE_SECS)
# gild's builds at once; more bakes wait in the ledger's queue.
MAX_PARALLEL = optional("GILD_MAX_PARALLEL_BUILDS", DEFAULT_MAX_PARALLEL_BUILDS)
if CONCURRENCY < 1:
    raise RuntimeError("environment variable GILD_START_CONCURRENCY must be at least 1")
if MAX_PARALLEL < 0:  # a usize in the Rust
    raise RuntimeError(f"environment variable GILD_MAX_PARALLEL_BUILDS=`{MAX_PARALLEL}` is invalid: negative")
if os.environ.get("GILD_REPOSITORY_HOST", "codecommit") != "codecommit":
    raise RuntimeError("the Python peer reads the catalog from CodeCommit only")

codecommit = client("codecommit")
# One pooled connection per concurrent start (botocore keeps 10 by default).
pool = {"max_pool_connections": max(10, CONCURRENCY)}
codebuild = client("codebuild", **pool)
ledger = Ledger(client("dynamodb", **pool), required("GILD_LEDGER_TABLE"))


class InFlight(Exception):
    """Another invocation claimed the bake and has not recorded a build yet."""


class StartFailed(Exception):
    pass


def holds_slot(record, now):
    """queue::holds_slot: whether a bake holds (or is about to take) a CodeBuild slot."""
    state = record["state"]
    if state == "requested":
        return bool(record.get("build_id")) or record["lease_until"] >= now
    return state in ("baking", "baked", "testing")


def free_slots(active, limit, now):
    """queue::free_slots with no ended build: how many of gild's builds may start now."""
    return max(0, limit - sum(1 for record in active if holds_slot(record, now)))


class Slots:
    """CodeBuild slots one invocation may still fill. Once CodeBuild itself
    says the account is full, the rest queue without asking it again."""

    def __init__(self, free):
        self.free = free
        self.quota_full = False
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            if self.quota_full or self.free == 0:
                return False
            self.free -= 1
            return True

    def give_back(self):
        with self.lock:
            self.free += 1

    def full(self):
        with self.lock:
            self.quota_full = True


def _limit_exceeded(err):
    """PortError::LimitExceeded: a limit code, not answered as 429 (throttling)."""
    response = getattr(err, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in LIMITS and status != 429


def read_catalog(commit):
    try:
        text = codecommit.get_file(
            repositoryName=REPOSITORY, commitSpecifier=commit, filePath=CATALOG_FILE
        )["fileContent"].decode()
    except codecommit.exceptions.FileDoesNotExistException:
        raise RuntimeError(f"{CATALOG_FILE} not found at commit {commit}, no build started") from None
    families = tomllib.loads(text).get("families") or {}
    for name, family in families.items():
        if not isinstance(family, dict) or "path" not in family or family.get("os") not in ("linux", "windows"):
            raise ValueError(f"{CATALOG_FILE}: family `{name}` needs `path` and `os` (linux or windows)")
    if not families:
        raise ValueError("the catalog declares no family")
    return sorted(families)


def start_build(family, dedupe_key, commit, slots):
    """StartBuild; None when the account's concurrent-build quota is full
    (queued, not retried: slots free up in minutes or hours)."""
    try:
        return codebuild.start_build(
            projectName=BAKE_PROJECT,
            sourceVersion=commit,
            idempotencyToken=idempotency_token(family, dedupe_key),
            environmentVariablesOverride=plain(
                [
                    ("GILD_FAMILY", family),
                    ("GILD_TRIGGER", "schedule"),
                    ("GILD_SOURCE_COMMIT", commit),
                    ("GILD_DEDUPE_KEY", dedupe_key),
                ]
            ),
        )["build"]["id"]
    except Exception as err:
        if _limit_exceeded(err):
            log.warning("%s: CodeBuild has no free slot (%s); queueing", family, err)
            slots.full()
            return None
        slots.give_back()
        raise


def enqueue(family, dedupe_key, now):
    """requested -> queued: the write makes the queued bake durable."""
    if not ledger.advance(family, dedupe_key, "requested", "queued", {}, now):
        log.warning("%s: claim moved on before the bake was queued", family)
    log.info("%s %s: no CodeBuild slot free; bake queued", family, dedupe_key)
    return "queued", {"family": family, "dedupe_key": dedupe_key}


def start_once(family, dedupe_key, commit, now, owner, slots):
    """Claim, start (or queue), record: a redelivery finds the claim and starts nothing."""
    existing = ledger.claim(
        {
            "family": family,
            "dedupe_key": dedupe_key,
            "trigger": "schedule",
            "state": "requested",
            "commit": commit,
            "owner": owner,
            "requested_at": now,
            "updated_at": now,
            "lease_until": now + LEASE_SECS,
        },
        now,
    )
    if existing is not None:
        if existing["state"] == "requested" and not existing.get("build_id"):
            raise InFlight(f"another invocation is starting it (claim held until {existing['lease_until']})")
        log.info("%s %s already claimed (%s), not starting again", family, dedupe_key, existing["state"])
        return "duplicate", {
            "family": family,
            "dedupe_key": dedupe_key,
            "state": existing["state"],
            "build_id": existing.get("build_id"),
        }
    try:
        build_id = start_build(family, dedupe_key, commit, slots) if slots.take() else None
    except Exception:
        ledger.release(family, dedupe_key, "requested")  # let the retried event claim it again
        raise
    if build_id is None:
        return enqueue(family, dedupe_key, now)
    if not ledger.advance(family, dedupe_key, "requested", "baking", {"build_id": build_id}, now):
        log.warning("%s: ledger moved on before build %s was recorded", family, build_id)
    log.info("bake of %s started: %s", family, build_id)
    return "started", {"family": family, "dedupe_key": dedupe_key, "build_id": build_id}


def handler(event, context):
    now = int(time.time())
    if event.get("source") != "aws.events" or event.get("detail-type") != "Scheduled Event":
        raise ValueError(f"the Python peer handles the schedule only, not `{event.get('detail-type')}`")
    when = datetime.fromisoformat(event["time"])
    dedupe_key = f"schedule:{when.year:04}-{when.month:02}"

    tip = codecommit.get_branch(repositoryName=REPOSITORY, branchName=TRACKED_BRANCH)["branch"]["commitId"]
    families = read_catalog(tip)
    outcome = {
        "event": event["detail-type"],
        "reason": f"monthly patch rebuild for {dedupe_key[9:]}: all {len(families)} famil{'y' if len(families) == 1 else 'ies'}",
        "started": [],
        "queued": [],
        "duplicates": [],
    }
    # What holds CodeBuild slots now, read before any claim.
    slots = Slots(free_slots(ledger.active(), MAX_PARALLEL, now))
    owner = invocation_token()
    failures = []
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        futures = {f: pool.submit(start_once, f, dedupe_key, tip, now, owner, slots) for f in families}
        for family, future in futures.items():
            try:
                kind, result = future.result()
                outcome["duplicates" if kind == "duplicate" else kind].append(result)
            except Exception as err:  # noqa: BLE001 - reported together below
                failures.append(f"{family}: {err}")
    if failures:
        raise StartFailed(
            f"{len(failures)} of {len(families)} bakes did not start, the event will be retried "
            f"({'; '.join(failures)}); bakes already started will not start again"
        )
    return outcome
