"""The bake ledger in DynamoDB (partition key `family`, sort key
`dedupe_key`), with the item schema and conditions of crates/aws/src/dynamodb.rs.

Records not yet in a terminal state carry `active = "yes"`, the partition key
of the sparse global secondary index `active` (sort key `requested_at`): the
queue reads what holds and waits for CodeBuild slots with one Query."""

import hashlib

from .common import log

# Optional string attributes, in the order the Rust adapter writes them.
OPTIONAL = ("commit", "build_id", "image", "test_build_id", "failed_stage", "reason", "owner")
CHANGES = ("build_id", "image", "test_build_id", "failed_stage", "reason")

# The sparse index of records not in a terminal state (infra/template.yaml).
ACTIVE_INDEX = "active"
ACTIVE = "active"
ACTIVE_VALUE = "yes"
TERMINAL = ("promoted", "failed")  # BakeState::is_terminal


def idempotency_token(family, dedupe_key):
    """StartBuild's token for a bake: 16 bytes of sha256, hex."""
    return hashlib.sha256(f"{family}\n{dedupe_key}".encode()).hexdigest()[:32]


def _key(family, dedupe_key):
    return {"family": {"S": family}, "dedupe_key": {"S": dedupe_key}}


def from_item(item):
    record = {name: value.get("S", value.get("N")) for name, value in item.items()}
    for name in ("requested_at", "updated_at", "lease_until"):
        record[name] = int(record.get(name) or 0)
    return record


def _condition_failed(err):
    return err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class Ledger:
    def __init__(self, dynamodb, table):
        self.dynamodb = dynamodb
        self.table = table

    def get(self, family, dedupe_key):
        item = self.dynamodb.get_item(
            TableName=self.table, Key=_key(family, dedupe_key), ConsistentRead=True
        ).get("Item")
        return from_item(item) if item else None

    def claim(self, record, now):
        """Writes a new `requested` record; returns None when claimed, else the existing record."""
        item = _key(record["family"], record["dedupe_key"])
        item["trigger"] = {"S": record["trigger"]}
        item["state"] = {"S": record["state"]}
        for name in ("requested_at", "updated_at", "lease_until"):
            item[name] = {"N": str(record[name])}
        if record["state"] not in TERMINAL:
            item[ACTIVE] = {"S": ACTIVE_VALUE}
        for name in OPTIONAL:
            if record.get(name) is not None:
                item[name] = {"S": record[name]}
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item=item,
                # New, or a claim whose holder died before recording a build.
                ConditionExpression="attribute_not_exists(#family) OR (#state = :requested AND #lease < :now AND attribute_not_exists(#build)) OR #owner = :owner",
                ExpressionAttributeNames={
                    "#family": "family",
                    "#owner": "owner",
                    "#state": "state",
                    "#lease": "lease_until",
                    "#build": "build_id",
                },
                ExpressionAttributeValues={
                    ":owner": {"S": record.get("owner") or "-"},
                    ":requested": {"S": "requested"},
                    ":now": {"N": str(now)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except self.dynamodb.exceptions.ConditionalCheckFailedException as err:
            old = err.response.get("Item")
            existing = from_item(old) if old else self.get(record["family"], record["dedupe_key"])
            if existing is None:
                raise RuntimeError("claim refused but no item found") from err
            return existing

    def lock(self, family, dedupe_key, state, now, lease_secs, owner):
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=_key(family, dedupe_key),
                UpdateExpression="SET #lease = :until, #owner = :owner",
                ConditionExpression="#state = :state AND (#lease < :now OR #owner = :owner)",
                ExpressionAttributeNames={"#state": "state", "#lease": "lease_until", "#owner": "owner"},
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":state": {"S": state},
                    ":now": {"N": str(now)},
                    ":until": {"N": str(now + lease_secs)},
                },
            )
            return True
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return False

    def advance(self, family, dedupe_key, from_state, to_state, change, now):
        """Moves the state on (and frees the lock); False when it was not `from_state`."""
        sets = ["#state = :to", "#updated_at = :now", "#lease = :zero"]
        names = {"#state": "state", "#updated_at": "updated_at", "#lease": "lease_until"}
        values = {
            ":zero": {"N": "0"},
            ":from": {"S": from_state},
            ":to": {"S": to_state},
            ":now": {"N": str(now)},
        }
        for name in CHANGES:
            if change.get(name) is not None:
                sets.append(f"#{name} = :{name}")
                names[f"#{name}"] = name
                values[f":{name}"] = {"S": change[name]}
        expression = "SET " + ", ".join(sets)
        if to_state in TERMINAL:
            # Leaves the active index: the bake holds and waits for nothing.
            expression += " REMOVE #active"
            names["#active"] = ACTIVE
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=_key(family, dedupe_key),
                UpdateExpression=expression,
                ConditionExpression="#state = :from",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            return True
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return False

    def active(self):
        """The records not yet in a terminal state: one paginated Query on the
        `active` index (eventually consistent, as a GSI must be)."""
        request = {
            "TableName": self.table,
            "IndexName": ACTIVE_INDEX,
            "KeyConditionExpression": "#active = :yes",
            "ExpressionAttributeNames": {"#active": ACTIVE},
            "ExpressionAttributeValues": {":yes": {"S": ACTIVE_VALUE}},
        }
        records = []
        while True:
            page = self.dynamodb.query(**request)
            records.extend(from_item(item) for item in page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                return records
            request["ExclusiveStartKey"] = start

    def release(self, family, dedupe_key, state):
        """Frees the lock or claim so that Lambda's retry can take it; best effort."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=_key(family, dedupe_key),
                UpdateExpression="SET #lease = :zero",
                ConditionExpression="#state = :state",
                ExpressionAttributeNames={"#state": "state", "#lease": "lease_until"},
                ExpressionAttributeValues={":state": {"S": state}, ":zero": {"N": "0"}},
            )
        except Exception as err:  # noqa: BLE001 - it expires on its own
            if not getattr(err, "response", None) or not _condition_failed(err):
                log.warning("could not release %s %s: %s; it expires on its own", family, dedupe_key, err)
