"""An IAM gate in front of the AWS emulator: every request is evaluated
against the role its access key belongs to, as AWS would, before moto sees it.

    python -m tests.twin.iam.gate --upstream http://127.0.0.1:<moto port> \
        --template infra/template.yaml --port 0 --credentials-out creds.json \
        [--decisions-out decisions.jsonl] [--parameter Key=Value ...] \
        [--stack-json stack.json] [--route codecommit=http://127.0.0.1:<stub>]

prints ``listening <port>`` once it accepts connections, and writes
``{role logical id: {"access_key_id", "secret_access_key"}}`` (fake keys,
distinct per role). For each request it reads the SigV4 Authorization header
(access key -> role; service from the credential scope) and the operation
(X-Amz-Target for JSON protocols, the Action form field for query ones, the
method, path and query for S3's REST protocol: ``Gate.parse``), maps it to
every authorization AWS makes for it (wire.py: the action, the resource ARNs
and the condition context, tags of existing resources read from the
emulator; one call may authorize several actions, e.g. RunInstances also
ec2:CreateTags, iam:PassRole and kms:* through EC2), evaluates each with
evaluate.py, and either forwards the request unchanged or answers
AccessDenied in that service's wire shape, naming the refused action. The
mapping covers the calls gild's functions make (crates/aws/src) and those of
the builds (buildspecs, the packer stand-in, CodeBuild's artifact upload and
log; tests/twin/iam/test_wire.py holds it to the fixture of build calls). An
operation it does not map is refused and logged as unmapped: nothing is
waved through. Each decision is one JSON line in --decisions-out: role,
action, the authorizations, allowed, and for a refusal refused_action,
refused_resource and the reason.

With --stack-json (tools/twin_stack_deploy.py's output) the policies are
resolved with the deployed stack's parameters and physical ids, so they name
what moto created and the functions call; --route sends one service's
allowed calls to another server (the end-to-end tests' CodeCommit stub).

moto checks no signature, and neither does the gate: it trusts the access
key to name the role. What the conditions need from existing resources
(EC2 tags, an image's owner and snapshots, a key pair's tags, an instance
profile's role, a bucket's default KMS key) is read from the upstream with
boto3 under the emulator's own credentials (``_Emulator``), never through a
route.
"""

from __future__ import annotations

import argparse
import datetime
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

from .calls import load as load_calls
from .calls import role_id
from .evaluate import evaluate
from .roles import TEMPLATE, Stack, load, named_roles
from .wire import Authorization, Mapper, s3_operation

# The build calls' fixture: the KMS authorizations EC2 makes for the caller
# are read from it (wire.Mapper.via_ec2).
_FIXTURE = load_calls()

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
    "Logs_20140328": "logs",
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
        self.world = _Emulator(self.upstream.geturl(), region)
        # The stack's one CodeCommit repository, as its functions are told.
        self.world.repository = next(
            (
                f["Environment"]["GILD_REPOSITORY"]
                for f in deployment.get("Functions", {}).values()
                if f.get("Environment", {}).get("GILD_REPOSITORY")
            ),
            None,
        )
        self.mapper = Mapper(
            account,
            region,
            self.world,
            lambda text: self.stack.sub(text, dict(_FIXTURE["examples"])),
            _FIXTURE,
        )

    def authorization(
        self, service: str, action: str, body: dict
    ) -> list[Authorization] | None:
        """Every authorization AWS makes for the call (wire.py), or None
        when the gate has no mapping for it."""
        return self.mapper.authorizations(service, action, body)

    def parse(
        self, headers: dict, body_bytes: bytes, method: str = "POST", path: str = "/"
    ) -> dict | None:
        """The request as the mapping reads it: access key, region, service
        (X-Amz-Target's prefix, else the SigV4 scope), operation (the
        target's, the query form's Action, or S3's REST method and path),
        its parameters and protocol. None without a SigV4 credential."""
        m = _CREDENTIAL.search(headers.get("authorization", ""))
        if not m:
            return None
        key, _, region, signing = m.groups()
        target = headers.get("x-amz-target", "")
        if target:
            prefix, _, action = target.partition(".")
            try:
                params = json.loads(body_bytes or b"{}")
            except ValueError:
                params = {}
            service, protocol = _TARGETS.get(prefix, signing), "json"
        elif signing == "s3":
            service, protocol = "s3", "rest-xml"
            action, params = s3_operation(method, path, headers)
            action = action or f"{method} {urllib.parse.urlsplit(path).path}"
        else:
            form = urllib.parse.parse_qs(
                body_bytes.decode("utf-8", "replace"), keep_blank_values=True
            )
            params = {k: v[0] for k, v in form.items()}
            action, service, protocol = params.get("Action", ""), signing, "query"
        return {
            "key": key,
            "region": region,
            "service": service,
            "operation": action,
            "params": params,
            "protocol": protocol,
        }

    def decide(
        self,
        headers: dict,
        body_bytes: bytes,
        method: str = "POST",
        path: str = "/",
    ) -> dict:
        """The decision for one request, as logged."""
        request = self.parse(headers, body_bytes, method, path)
        if request is None:
            return {
                "allowed": False,
                "reason": "no SigV4 credential",
                "code": "MissingAuthenticationToken",
            }
        key, region, service, action, body = (
            request[k] for k in ("key", "region", "service", "operation", "params")
        )
        role = self.keys.get(key)
        entry = {
            "role": role,
            "service": service,
            "action": f"{service}:{action}",
            "protocol": request["protocol"],
        }
        if role is None:
            return {
                **entry,
                "allowed": False,
                "reason": f"unknown access key {key}",
                "code": "UnrecognizedClient",
            }
        try:
            mapped = (
                self.authorization(service, action, body) if body is not None else None
            )
        except (KeyError, LookupError) as err:
            mapped, entry["mapping_error"] = None, str(err)
        if mapped is None:
            return {
                **entry,
                "allowed": False,
                "unmapped": True,
                "reason": f"{service}:{action} is not mapped",
            }
        session = f"gild-{role}"
        principal = {
            "aws:userid": f"{role_id(role)}:{session}",
            "aws:PrincipalArn": self.stack.getatt(role, "Arn"),
            "aws:PrincipalAccount": self.account,
            "aws:PrincipalType": "AssumedRole",
            "aws:RequestedRegion": region,
        }
        entry["principal"] = (
            f"arn:aws:sts::{self.account}:assumed-role/{self.stack.ref(role)}/{session}"
        )
        entry["authorizations"] = [
            {"action": a.action, "resources": a.resources} for a in mapped
        ]
        statements: list[str] = []
        for one in mapped:
            decision = evaluate(
                self.policies[role],
                one.action,
                one.resources,
                {**principal, **one.context},
                one.per_resource,
            )
            if not decision.allowed:
                return {
                    **entry,
                    "resources": mapped[0].resources,
                    "allowed": False,
                    "statements": list(decision.matched_statement_sids),
                    "reason": decision.reason,
                    "refused_action": one.action,
                    "refused_resource": decision.refused_resource,
                }
            statements += [
                s for s in decision.matched_statement_sids if s not in statements
            ]
        if entry["action"] == "sts:AssumeRole":
            target = self.role_named(body["RoleArn"])
            if target is None or not self.trusts(target, principal["aws:PrincipalArn"]):
                return {
                    **entry,
                    "resources": mapped[0].resources,
                    "allowed": False,
                    "reason": f"the trust policy of {body['RoleArn']} does not name {role}",
                    "refused_action": "sts:AssumeRole",
                    "refused_resource": body["RoleArn"],
                }
            entry["assumed"] = target
        return {
            **entry,
            "resources": mapped[0].resources,
            "allowed": True,
            "statements": statements,
            "reason": f"{entry['action']}: allowed by {', '.join(statements)}",
        }

    def role_named(self, arn: str) -> str | None:
        """The template's role (logical id) whose ARN is `arn`."""
        return next(
            (r for r in self.policies if self.stack.getatt(r, "Arn") == arn), None
        )

    def trusts(self, role: str, principal_arn: str) -> bool:
        """Whether `role`'s trust policy lets `principal_arn` assume it: an
        Allow of sts:AssumeRole naming that ARN as an AWS principal (the
        only form gild's template uses)."""
        document = self.stack.resolve(
            self.stack.template["Resources"][role]["Properties"][
                "AssumeRolePolicyDocument"
            ]
        )
        for statement in document.get("Statement", []):
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            named = (statement.get("Principal") or {}).get("AWS", [])
            named = [named] if isinstance(named, str) else named
            if (
                statement.get("Effect") == "Allow"
                and "sts:AssumeRole" in actions
                and principal_arn in named
            ):
                return True
        return False


class _Emulator:
    """wire.World over the emulator, read with boto3 under its own
    credentials (moto checks none): tags, images, key pairs, instance
    profiles, bucket encryption."""

    repository: str | None = None

    def __init__(self, endpoint: str, region: str):
        self.endpoint, self.region = endpoint, region
        self._clients: dict = {}
        self._lock = threading.Lock()

    def _call(self, service: str, operation: str, **params) -> dict:
        import boto3  # only these lookups need it
        from botocore.config import Config

        with self._lock:
            if service not in self._clients:
                self._clients[service] = boto3.client(
                    service,
                    endpoint_url=self.endpoint,
                    region_name=self.region,
                    aws_access_key_id="gate",
                    aws_secret_access_key="gate",
                    config=Config(retries={"max_attempts": 1}),
                )
            return getattr(self._clients[service], operation)(**params)

    def codecommit_repository(self) -> str | None:
        return self.repository

    def ec2_tags(self, resource_id: str) -> dict:
        found = self._call(
            "ec2",
            "describe_tags",
            Filters=[{"Name": "resource-id", "Values": [resource_id]}],
        )
        return {t["Key"]: t["Value"] for t in found.get("Tags", [])}

    def image(self, image_id: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            found = self._call("ec2", "describe_images", ImageIds=[image_id])["Images"]
        except ClientError:
            return None
        if not found:
            return None
        image = found[0]
        snapshot_ids = [
            m["Ebs"]["SnapshotId"]
            for m in image.get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("SnapshotId")
        ]
        snapshots = []
        for snapshot_id in snapshot_ids:
            snap = self._call("ec2", "describe_snapshots", SnapshotIds=[snapshot_id])
            for s in snap["Snapshots"]:
                snapshots.append(
                    {
                        "SnapshotId": s["SnapshotId"],
                        "KmsKeyId": s.get("KmsKeyId") if s.get("Encrypted") else None,
                        "Tags": {t["Key"]: t["Value"] for t in s.get("Tags", [])},
                    }
                )
        return {
            "OwnerId": image["OwnerId"],
            "Public": image.get("Public", False),
            "Tags": {t["Key"]: t["Value"] for t in image.get("Tags", [])},
            "Snapshots": snapshots,
        }

    def key_pair(self, name: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            found = self._call("ec2", "describe_key_pairs", KeyNames=[name])["KeyPairs"]
        except ClientError:
            return None
        if not found:
            return None
        tags = {t["Key"]: t["Value"] for t in found[0].get("Tags", [])}
        return {"KeyPairId": found[0].get("KeyPairId"), "Tags": tags}

    def instance_profile(self, name: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            found = self._call("iam", "get_instance_profile", InstanceProfileName=name)
        except ClientError:
            return None
        profile = found["InstanceProfile"]
        return {"Arn": profile["Arn"], "Roles": [r["Arn"] for r in profile["Roles"]]}

    def object_exists(self, bucket: str, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._call("s3", "head_object", Bucket=bucket, Key=key)
        except ClientError:
            return False
        return True

    def bucket_kms_key(self, bucket: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            found = self._call("s3", "get_bucket_encryption", Bucket=bucket)
        except ClientError:
            return None
        for rule in found["ServerSideEncryptionConfiguration"]["Rules"]:
            default = rule.get("ApplyServerSideEncryptionByDefault", {})
            if default.get("SSEAlgorithm") == "aws:kms":
                return default.get("KMSMasterKeyID")
        return None


def denial(decision: dict) -> tuple[int, dict, bytes]:
    """AccessDenied as the service answers it."""
    # The authorization that failed (ec2:CreateTags for a CreateKeyPair
    # whose tags are refused), as AWS names it.
    action = decision.get("refused_action") or decision.get("action", "?")
    resource = decision.get("refused_resource") or "*"
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
    if service == "s3":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
            f"<Message>{_xml(text)}</Message><RequestId>{request_id}</RequestId></Error>"
        )
        return 403, {"Content-Type": "application/xml"}, body.encode()
    ns = {"sns": "http://sns.amazonaws.com/doc/2010-03-31/"}.get(service, "")
    code = "AuthorizationError" if service == "sns" else "AccessDenied"
    body = (
        f'<ErrorResponse xmlns="{ns}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{_xml(text)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return 403, {"Content-Type": "text/xml"}, body.encode()


def assumed(gate: Gate, role: str) -> tuple[int, dict, bytes]:
    """AssumeRole's answer (STS API reference) with `role`'s keys, an hour."""
    keys = credentials_for(role)
    until = (
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    ).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = gate.stack.ref(role)
    body = (
        '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        "<AssumeRoleResult><Credentials>"
        f"<AccessKeyId>{keys['access_key_id']}</AccessKeyId>"
        f"<SecretAccessKey>{keys['secret_access_key']}</SecretAccessKey>"
        "<SessionToken>gate-session</SessionToken>"
        f"<Expiration>{until}</Expiration></Credentials>"
        f"<AssumedRoleUser><AssumedRoleId>{role_id(role)}:gild</AssumedRoleId>"
        f"<Arn>arn:aws:sts::{gate.account}:assumed-role/{_xml(str(name))}/gild</Arn>"
        "</AssumedRoleUser></AssumeRoleResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        "</AssumeRoleResponse>"
    )
    return 200, {"Content-Type": "text/xml"}, body.encode()


# The header a forwarded call carries its caller's principal ARN in.
PRINCIPAL_HEADER = "X-Gild-Principal"


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
                decision = gate.decide(headers, body, self.command, self.path)
            if log:
                with log_lock:
                    log.write(
                        json.dumps(
                            {"method": self.command, "path": self.path, **decision}
                        )
                        + "\n"
                    )
                    log.flush()
            if decision["allowed"] and decision.get("assumed"):
                # moto's STS would mint keys the gate does not know: the
                # gate answers with the assumed role's own.
                status, out_headers, payload = assumed(gate, decision["assumed"])
            elif decision["allowed"]:
                up = gate.routes.get(decision.get("service", ""), gate.upstream)
                status, out_headers, payload = self._forward(
                    up, body, decision.get("principal")
                )
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

        def _forward(
            self, up: urllib.parse.SplitResult, body: bytes, principal: str | None
        ):
            headers = dict(self.headers.items())
            if principal:
                # Who AWS would say made the call (the assumed role's
                # session): a stub that judges callers, such as
                # CodeCommit's approval pools, reads it here.
                headers[PRINCIPAL_HEADER] = principal
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            try:
                conn.request(
                    self.command,
                    self.path,
                    body=body,
                    headers=headers,
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
