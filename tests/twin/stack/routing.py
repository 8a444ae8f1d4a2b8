"""Which rules an event matches, decided by moto's EventBridge over the wire.

moto 5.2.5's TestEventPattern is a stub (moto/events/responses.py returns
an empty body; models.py raises NotImplementedError), so this asks the
matcher moto does run: PutEvents. Each pattern is copied onto a probe rule
on a bus of its own (`twin-routing`, so the stack's rules, which target
Lambda functions moto would try to run in docker, never fire), each probe
rule targets an SQS queue, and an event matched a pattern when it arrives
on that pattern's queue. moto delivers to SQS within the PutEvents call.
"""

from __future__ import annotations

import json
from typing import Any

from twin.stack import deploy

BUS = "twin-routing"


class Router:
    """Probe rules for a set of named patterns on one moto server."""

    def __init__(
        self, endpoint: str, region: str, patterns: dict[str, dict[str, Any]]
    ) -> None:
        api = deploy.clients(endpoint, region)
        self.events = api["events"]
        self.sqs = deploy.boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name=region,
        ).client("sqs", endpoint_url=endpoint)
        try:
            self.events.create_event_bus(Name=BUS)
        except self.events.exceptions.ResourceAlreadyExistsException:
            pass
        self.queues: dict[str, str] = {}
        for index, (name, pattern) in enumerate(sorted(patterns.items())):
            probe = f"probe-{index}"
            url = self.sqs.create_queue(QueueName=probe)["QueueUrl"]
            arn = self.sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            self.events.put_rule(
                Name=probe, EventBusName=BUS, EventPattern=json.dumps(pattern)
            )
            self.events.put_targets(
                Rule=probe, EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}]
            )
            self.queues[name] = url

    def matched(self, event: dict[str, Any]) -> set[str]:
        """The names of the patterns `event` matches.

        PutEvents sets id, account, region and time itself (as EventBridge
        does); the moto server runs as the events' account for that reason.
        """
        entry = {
            "EventBusName": BUS,
            "Source": event["source"],
            "DetailType": event["detail-type"],
            "Detail": json.dumps(event.get("detail", {})),
            "Resources": event.get("resources", []),
        }
        answer = self.events.put_events(Entries=[entry])
        if answer.get("FailedEntryCount"):
            raise RuntimeError(f"PutEvents refused the event: {answer['Entries']}")
        hits = set()
        for name, url in self.queues.items():
            messages = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10
            ).get("Messages", [])
            for message in messages:
                self.sqs.delete_message(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"]
                )
            if messages:
                hits.add(name)
        return hits
