"""An IAM gate in front of the AWS emulator: every request is evaluated
against the role its access key belongs to, as AWS would, before moto sees it.

    python -m tests.twin.iam.gate --upstream http://127.0.0.1:<moto port> \
        --template infra/template.yaml --port 0 --credentials-out creds.json \
        [--decisions-out decisions.jsonl] [--parameter Key=Value ...] \
        [--stack-json stack.json] [--route codecommit=http://127.0.0.1:<stub>]

prints ``listening <port>`` once it accepts connections, and writes
``{role logical id: {"access_key_id", "secret_access_key"}}`` (fake keys,
distinct per role). For each request it reads the SigV4 Authorization header
(access key -> role; service from the credential scope) and the action
(X-Amz-Target for JSON protocols, the Action form field for query ones),
maps it to the resources and condition context AWS authorizes (the table
below covers the calls gild's functions make: crates/aws/src), evaluates it
with evaluate.py, and either forwards the request unchanged or answers
AccessDenied in that service's wire shape. An action missing from the table
is refused and logged as unmapped: nothing is waved through.

With --stack-json (tools/twin_stack_deploy.py's output) the policies are
resolved with the deployed stack's parameters and physical ids, so they name
what moto created and the functions call; --route sends one service's
allowed calls to another server (the end-to-end tests' CodeCommit stub).

moto checks no signature, and neither does the gate: it trusts the access
key to name the role. Resource tags for EC2 conditions are read from the
upstream with boto3 (DescribeTags), under the emulator's own credentials.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import re
import sys
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .calls import role_id
from .evaluate import evaluate
from .roles import TEMPLATE, Stack, load, named_roles

_CREDENTIAL = re.compile(r"Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")
# X-Amz-Target prefixes of the JSON protocols gild uses -> IAM service prefix.
_TARGETS = {
    "DynamoDB_20120810": "dynamodb",
    "CodeBuild_20161006": "codebuild",
    "CodeCommit_20150413": "codecommit",
    "AmazonSSM": "ssm",
    "AWSEvents": "events",
    "secretsmanager": "secretsmanager",
    "AmazonSQS": "sqs",
}
_EC2_TYPES = {
    "ami": "image",
    "snap": "snapshot",
    "i": "instance",
    "vol": "volume",
    "sg": "security-group",
}


def credentials_for(role: str) -> dict:
    """Fake, stable, distinct keys per role (the format of AWS keys)."""
    digest = hashlib.sha256(role.encode()).hexdigest().upper()
    return {"access_key_id": "AKIA" + digest[:16], "secret_access_key": digest[16:56]}


class Gate:
    """The decision part, apart from HTTP so it can be tested directly."""

    def __init__(
        self,
        upstream: str,
        template: Path,
        parameters: dict,
        account: str,
        region: str,
        deployment: dict | None = None,
    ):
        self.upstream = urllib.parse.urlsplit(upstream)
        # Services served elsewhere (the harness's CodeCommit stub), by IAM
        # service prefix; everything else goes to `upstream`.
        self.routes: dict[str, urllib.parse.SplitResult] = {}
        self.account, self.region = account, region
        # A stack deployed into moto (stack.json): its parameters, name, id
        # and physical ids, so the policies name what the functions call.
        deployment = deployment or {}
        physical = {
            lid: res["PhysicalId"]
            for lid, res in deployment.get("Resources", {}).items()
        }
        physical.update(
            {s["LogicalId"]: s["PhysicalId"] for s in deployment.get("SideCreated", [])}
        )
        self.stack = Stack(
            load(template),
            {**deployment.get("Parameters", {}), **parameters},
            region=region,
            account=account,
            name=deployment.get("StackName", "gild"),
            deployed=physical,
            stack_uuid=deployment.get("StackUuid"),
        )
        self.policies = named_roles(stack=self.stack)
        self.keys = {credentials_for(r)["access_key_id"]: r for r in self.policies}
        self._ec2 = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------- mapping
    def _arn(self, service: str, rest: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{rest}"

    def _ec2_tags(self, resource_id: str) -> dict:
        import boto3  # only the EC2 mappings need it

        with self._lock:
            if self._ec2 is None:
                self._ec2 = boto3.client(
                    "ec2",
                    endpoint_url=self.upstream.geturl(),
                    region_name=self.region,
                    aws_access_key_id="gate",
                    aws_secret_access_key="gate",
                )
            found = self._ec2.describe_tags(
                Filters=[{"Name": "resource-id", "Values": [resource_id]}]
            )
        return {t["Key"]: t["Value"] for t in found.get("Tags", [])}

    def _ec2_resource(self, resource_id: str) -> tuple[str, dict]:
        kind = _EC2_TYPES.get(resource_id.split("-", 1)[0])
        if kind is None:
            raise LookupError(f"EC2 id {resource_id}")
        owner = "" if kind in ("image", "snapshot") else self.account
        arn = f"arn:aws:ec2:{self.region}:{owner}:{kind}/{resource_id}"
        tags = self._ec2_tags(resource_id)
        ctx = {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
        ctx.update({f"ec2:ResourceTag/{k}": v for k, v in tags.items()})
        return arn, ctx

    def authorization(
        self, service: str, action: str, body: dict
    ) -> tuple[list[str], dict, dict] | None:
        """(resources, context, per-resource context) AWS authorizes for the
        call, or None when the gate has no mapping for it."""

        def table(name: str) -> str:
            return self._arn("dynamodb", f"table/{name}")

        if service == "dynamodb" and action in (
            "GetItem",
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "Scan",
        ):
            return [table(body["TableName"])], {}, {}
        if service == "dynamodb" and action == "Query":
            arn = table(body["TableName"])
            if body.get("IndexName"):
                arn += f"/index/{body['IndexName']}"
            return [arn], {}, {}
        if service == "codebuild" and action == "StartBuild":
            name = body["projectName"]
            return (
                [
                    name
                    if name.startswith("arn:")
                    else self._arn("codebuild", f"project/{name}")
                ],
                {},
                {},
            )
        if service == "codebuild" and action == "BatchGetBuilds":
            projects = {
                i.split(":", 1)[0]
                if not i.startswith("arn:")
                else i.split("/")[1].split(":")[0]
                for i in body["ids"]
            }
            return (
                [self._arn("codebuild", f"project/{p}") for p in sorted(projects)],
                {},
                {},
            )
        if service == "codecommit" and action in (
            "GetFile",
            "GetDifferences",
            "GetBranch",
        ):
            return [self._arn("codecommit", body["repositoryName"])], {}, {}
        if service == "ssm" and action in ("PutParameter", "GetParameter"):
            return [self._arn("ssm", "parameter/" + body["Name"].lstrip("/"))], {}, {}
        if service == "secretsmanager" and action == "GetSecretValue":
            secret = body["SecretId"]
            return (
                [
                    secret
                    if secret.startswith("arn:")
                    else self._arn("secretsmanager", f"secret:{secret}")
                ],
                {},
                {},
            )
        if service == "events" and action == "PutEvents":
            buses = set()
            for entry in body.get("Entries", []):
                bus = entry.get("EventBusName") or "default"
                buses.add(
                    bus
                    if bus.startswith("arn:")
                    else self._arn("events", f"event-bus/{bus}")
                )
            sources = sorted({e.get("Source", "") for e in body.get("Entries", [])})
            return sorted(buses), {"events:source": sources}, {}
        if service == "sns" and action == "Publish":
            return [body["TopicArn"]], {}, {}
        if service == "sqs" and action == "SendMessage":
            url = body["QueueUrl"].rstrip("/").split("/")
            return [self._arn("sqs", url[-1])], {}, {}
        if service == "ec2" and action in (
            "DescribeImages",
            "DescribeSnapshots",
            "DescribeTags",
            "DescribeInstances",
        ):
            return ["*"], {}, {}
        if service == "ec2" and action in (
            "CreateTags",
            "DeregisterImage",
            "DeleteSnapshot",
        ):
            ids = [
                v
                for k, v in body.items()
                if re.fullmatch(r"ResourceId\.\d+|ImageId|SnapshotId", k)
            ]
            resources, per = [], {}
            for resource_id in ids:
                arn, ctx = self._ec2_resource(resource_id)
                resources.append(arn)
                per[arn] = ctx
            context = {}
            if action == "CreateTags":
                n = 1
                keys = []
                while f"Tag.{n}.Key" in body:
                    keys.append(body[f"Tag.{n}.Key"])
                    context[f"aws:RequestTag/{body[f'Tag.{n}.Key']}"] = body.get(
                        f"Tag.{n}.Value", ""
                    )
                    n += 1
                context["aws:TagKeys"] = keys
            return resources, context, per
        return None

    def decide(self, headers: dict, body_bytes: bytes) -> dict:
        """The decision for one request, as logged."""
        auth = headers.get("authorization", "")
        m = _CREDENTIAL.search(auth)
        if not m:
            return {
                "allowed": False,
                "reason": "no SigV4 credential",
                "code": "MissingAuthenticationToken",
            }
        key, _, region, signing = m.groups()
        role = self.keys.get(key)
        target = headers.get("x-amz-target", "")
        if target:
            prefix, _, action = target.partition(".")
            service = _TARGETS.get(prefix, signing)
            try:
                body = json.loads(body_bytes or b"{}")
            except ValueError:
                body = {}
            protocol = "json"
        else:
            form = urllib.parse.parse_qs(
                body_bytes.decode("utf-8", "replace"), keep_blank_values=True
            )
            body = {k: v[0] for k, v in form.items()}
            action, service, protocol = body.get("Action", ""), signing, "query"
        entry = {
            "role": role,
            "service": service,
            "action": f"{service}:{action}",
            "protocol": protocol,
        }
        if role is None:
            return {
                **entry,
                "allowed": False,
                "reason": f"unknown access key {key}",
                "code": "UnrecognizedClient",
            }
        try:
            mapped = self.authorization(service, action, body)
        except (KeyError, LookupError) as err:
            mapped, entry["mapping_error"] = None, str(err)
        if mapped is None:
            return {
                **entry,
                "allowed": False,
                "unmapped": True,
                "reason": f"{service}:{action} is not mapped",
            }
        resources, context, per = mapped
        session = f"gild-{role}"
        context = {
            "aws:userid": f"{role_id(role)}:{session}",
            "aws:PrincipalArn": self.stack.getatt(role, "Arn"),
            "aws:PrincipalAccount": self.account,
            "aws:RequestedRegion": region,
            **context,
        }
        decision = evaluate(
            self.policies[role], f"{service}:{action}", resources, context, per
        )
        principal = (
            f"arn:aws:sts::{self.account}:assumed-role/{self.stack.ref(role)}/{session}"
        )
        return {
            **entry,
            "resources": resources,
            "allowed": decision.allowed,
            "statements": list(decision.matched_statement_sids),
            "reason": decision.reason,
            "principal": principal,
            "refused_resource": decision.refused_resource,
        }


def denial(decision: dict) -> tuple[int, dict, bytes]:
    """AccessDenied as the service answers it."""
    action, resource = (
        decision.get("action", "?"),
        decision.get("refused_resource") or "*",
    )
    who = decision.get("principal", "anonymous")
    text = f"User: {who} is not authorized to perform: {action} on resource: {resource} because no identity-based policy allows the {action} action"
    request_id = str(uuid.uuid4())
    service = decision.get("service")
    if decision.get("protocol") == "json":
        kind = (
            "application/x-amz-json-1.0"
            if service in ("dynamodb", "sqs")
            else "application/x-amz-json-1.1"
        )
        body = json.dumps({"__type": "AccessDeniedException", "message": text}).encode()
        return (
            400,
            {
                "Content-Type": kind,
                "x-amzn-RequestId": request_id,
                "x-amzn-ErrorType": "AccessDeniedException",
            },
            body,
        )
    if service == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>UnauthorizedOperation</Code>'
            f"<Message>You are not authorized to perform this operation. {_xml(text)}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        return 403, {"Content-Type": "text/xml;charset=UTF-8"}, body.encode()
    ns = {"sns": "http://sns.amazonaws.com/doc/2010-03-31/"}.get(service, "")
    code = "AuthorizationError" if service == "sns" else "AccessDenied"
    body = (
        f'<ErrorResponse xmlns="{ns}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{_xml(text)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return 403, {"Content-Type": "text/xml"}, body.encode()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def serve(gate: Gate, port: int, decisions_out: Path | None) -> ThreadingHTTPServer:
    log_lock = threading.Lock()
    log = decisions_out.open("a", encoding="utf-8") if decisions_out else None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # the decision log is the log
            pass

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            if self.path.startswith("/moto-api"):
                decision = {
                    "allowed": True,
                    "reason": "emulator control API",
                    "action": "moto-api",
                }
            else:
                decision = gate.decide(headers, body)
            if log:
                with log_lock:
                    log.write(
                        json.dumps(
                            {"method": self.command, "path": self.path, **decision}
                        )
                        + "\n"
                    )
                    log.flush()
            if decision["allowed"]:
                up = gate.routes.get(decision.get("service", ""), gate.upstream)
                status, out_headers, payload = self._forward(up, body)
            else:
                status, out_headers, payload = denial(decision)
            self.send_response(status)
            for k, v in out_headers.items():
                if k.lower() not in (
                    "content-length",
                    "transfer-encoding",
                    "connection",
                ):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _forward(self, up: urllib.parse.SplitResult, body: bytes):
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            try:
                conn.request(
                    self.command,
                    self.path,
                    body=body,
                    headers=dict(self.headers.items()),
                )
                resp = conn.getresponse()
                return resp.status, dict(resp.getheaders()), resp.read()
            finally:
                conn.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--credentials-out", type=Path, required=True)
    parser.add_argument("--decisions-out", type=Path)
    parser.add_argument("--parameter", action="append", default=[], help="Key=Value")
    parser.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="SERVICE=URL",
        help="send this IAM service's allowed calls to URL instead of --upstream",
    )
    parser.add_argument(
        "--stack-json",
        type=Path,
        help="a deployed stack (tools/twin_stack_deploy.py): its parameters and names",
    )
    parser.add_argument("--account", default="123456789012")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args(argv)
    parameters = dict(p.split("=", 1) for p in args.parameter)
    deployment = json.loads(args.stack_json.read_text()) if args.stack_json else None
    gate = Gate(
        args.upstream, args.template, parameters, args.account, args.region, deployment
    )
    for route in args.route:
        service, _, url = route.partition("=")
        gate.routes[service] = urllib.parse.urlsplit(url)
    args.credentials_out.write_text(
        json.dumps({r: credentials_for(r) for r in gate.policies}, indent=2) + "\n"
    )
    server = serve(gate, args.port, args.decisions_out)
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
