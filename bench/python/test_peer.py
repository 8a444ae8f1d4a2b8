"""Self-check of the Python peer against moto, with plain python:

    /tmp/peer-venv/bin/python bench/python/test_peer.py

Starts moto (MOTO_PYTHON, default the repository's .venv, running
tools/moto_serial.py), a CodeCommit stand-in answering GetBranch/GetFile for
an in-memory gild.toml, creates the stack's resources as
tests/src/pipeline.rs does, then runs both handlers in process (recording
every AWS call) and once each through `python -m awslambdaric` against a
tiny Runtime API server, with a recording proxy in front of moto.
"""

import base64
import copy
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MOTO_PYTHON = os.environ.get("MOTO_PYTHON", str(ROOT / ".venv/bin/python"))
EVENTS = ROOT / "tests/events"

REPOSITORY = "platform-images"
TIP = "9f2c1e7b5a3d4c6e8f0a1b2c3d4e5f6a7b8c9d0e"
CATALOG = """
[families.debian13-base]
path = "images/debian13-base"
os = "linux"
roles = ["baseline"]

[families.win2022-core-dotnet]
path = "images/win2022-core-dotnet"
os = "windows"

[families.win2022-iis]
path = "images/win2022-iis"
os = "windows"
roles = ["dotnet", "iis"]
"""
FAMILIES = ["debian13-base", "win2022-core-dotnet", "win2022-iis"]

passed = failed = 0


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}: {detail}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(handler_class):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


class CodeCommit(BaseHTTPRequestHandler):
    """GetBranch and GetFile of the AWS JSON 1.1 protocol, for one repository."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        operation = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        RECORDED.append(("codecommit", operation))
        if body.get("repositoryName") != REPOSITORY:
            return self.answer(400, {"__type": "RepositoryDoesNotExistException", "message": "no such repository"})
        if operation == "GetBranch":
            return self.answer(200, {"branch": {"branchName": body["branchName"], "commitId": TIP}})
        if operation == "GetFile" and body.get("filePath") == "gild.toml":
            return self.answer(200, {
                "commitId": TIP, "blobId": "b" * 40, "filePath": "gild.toml", "fileMode": "NORMAL",
                "fileSize": len(CATALOG), "fileContent": base64.b64encode(CATALOG.encode()).decode(),
            })
        return self.answer(400, {"__type": "FileDoesNotExistException", "message": "no such file"})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# Operations seen on the wire (proxy and CodeCommit stand-in), in order.
RECORDED = []


def forward(handler, upstream, body):
    """Sends the request `handler` received on to `upstream` and its answer back."""
    request = urllib.request.Request(upstream + handler.path, data=body, method="POST",
                                     headers={k: v for k, v in handler.headers.items() if k.lower() != "host"})
    try:
        with urllib.request.urlopen(request) as r:
            status, headers, data = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, headers, data = e.code, e.headers, e.read()
    handler.send_response(status)
    for k, v in headers.items():
        if k.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
            handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def recording_proxy(upstream):
    class Proxy(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            target = self.headers.get("X-Amz-Target")
            scope = self.headers.get("Authorization", "").split("Credential=")[-1].split("/")
            service = scope[3] if len(scope) > 3 else "?"
            if target:
                operation = target.rsplit(".", 1)[-1]
            else:
                form = dict(p.split("=", 1) for p in body.decode().split("&") if "=" in p)
                operation = form.get("Action", "?")
            RECORDED.append((service, operation))
            forward(self, upstream, body)

    return Proxy


class RuntimeApi(BaseHTTPRequestHandler):
    """One invocation of the Lambda Runtime API, then holds `next` open."""

    event = None
    answer = None
    done = threading.Event()
    served = False

    def log_message(self, *args):
        pass

    def do_GET(self):
        cls = type(self)
        if self.path != "/2018-06-01/runtime/invocation/next" or cls.served:
            cls.done.wait(60)
            time.sleep(60)  # the test kills the process first
            return
        cls.served = True
        data = json.dumps(cls.event).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "req-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:gild-peer")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        cls = type(self)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        kind = "response" if self.path.endswith("/response") else "error"
        cls.answer = (kind, json.loads(body or b"null"))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        cls.done.set()


def run_through_ric(handler, event, env):
    """`python -m awslambdaric handler` with cwd bench/python; returns (kind, body)."""
    api = type("Api", (RuntimeApi,), {"event": event, "answer": None, "done": threading.Event(), "served": False})
    server, address = serve(api)
    process = subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", handler],
        cwd=HERE,
        env={**env, "AWS_LAMBDA_RUNTIME_API": address, "PATH": os.environ.get("PATH", "")},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        api.done.wait(60)
    finally:
        process.kill()
        output = process.communicate()[0].decode(errors="replace")
        server.shutdown()
    if api.answer is None:
        print(output)
    return api.answer, output


def start_moto():
    port = free_port()
    process = subprocess.Popen(
        [MOTO_PYTHON, str(ROOT / "tools/moto_serial.py"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/data.json", timeout=1).read()
            return process, endpoint
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("moto did not start")


def create_ledger(dynamodb, name="gild-ledger"):
    """The ledger as tests/src/pipeline.rs (and infra/template.yaml) declare it,
    with the bake queue's sparse index `active` (hash `active`, range `requested_at`)."""
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "N" if n == "requested_at" else "S"}
                              for n in ("family", "dedupe_key", "active", "requested_at")],
        KeySchema=[{"AttributeName": "family", "KeyType": "HASH"}, {"AttributeName": "dedupe_key", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{
            "IndexName": "active",
            "KeySchema": [{"AttributeName": "active", "KeyType": "HASH"},
                          {"AttributeName": "requested_at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
    )


def create_stack(boto3):
    create_ledger(boto3.client("dynamodb"))
    codebuild = boto3.client("codebuild")
    for project, buildspec in (("gild-bake", "buildspecs/bake.yml"), ("gild-test", "buildspecs/test.yml")):
        codebuild.create_project(
            name=project,
            source={"type": "CODECOMMIT", "buildspec": buildspec,
                    "location": f"https://git-codecommit.us-east-1.amazonaws.com/v1/repos/{REPOSITORY}"},
            artifacts={"type": "NO_ARTIFACTS"},
            environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/amazonlinux-x86_64-standard:5.0",
                         "computeType": "BUILD_GENERAL1_SMALL"},
            serviceRole="arn:aws:iam::123456789012:role/gild-codebuild",
        )
    return boto3.client("sns").create_topic(Name="gild-announcements")["TopicArn"]


def baked_image(ec2, build_id):
    """What Packer leaves: an AMI with a snapshot, tagged as gild's, of this build."""
    image = ec2.register_image(Name=f"gild-{build_id.replace(':', '-')}", RootDeviceName="/dev/xvda",
                               VirtualizationType="hvm", Architecture="x86_64")["ImageId"]
    described = ec2.describe_images(ImageIds=[image])["Images"][0]
    snapshots = [m["Ebs"]["SnapshotId"] for m in described["BlockDeviceMappings"] if "Ebs" in m]
    # moto ignores TagSpecifications on RegisterImage; Packer tags at creation.
    ec2.create_tags(Resources=[image, *snapshots], Tags=[
        {"Key": "gild:managed", "Value": "true"}, {"Key": "gild:build-id", "Value": build_id},
        {"Key": "gild:base-ami", "Value": "ami-0base0000000000000"},
    ])
    return image, snapshots


def bake_event(build, image):
    """The `CodeBuild Build State Change` AWS emits when `build` (id, env) succeeded."""
    event = json.loads((EVENTS / "codebuild-bake-succeeded.json").read_text())
    arn = f"arn:aws:codebuild:us-east-1:123456789012:build/{build['id']}"
    event["resources"] = [arn]
    event["time"] = "2026-11-11T04:00:00Z"
    detail = event["detail"]
    detail.update({"build-status": "SUCCEEDED", "project-name": "gild-bake", "build-id": arn})
    info = detail["additional-information"]
    info["source-version"] = TIP
    info["environment"]["environment-variables"] = build["env"]
    family = next(v["value"] for v in build["env"] if v["name"] == "GILD_FAMILY")
    info["exported-environment-variables"] = [
        {"name": "GILD_FAMILY", "value": family}, {"name": "GILD_AMI_ID", "value": image},
    ]
    return event


# StartBuild requests as sent, by family (moto keeps no environment overrides).
STARTS = {}


def bake_token(family, dedupe_key):
    """BakeKey::idempotency_token: the first 16 bytes of sha256("family\\ndedupe_key"), hex."""
    return "".join(f"{b:02x}" for b in hashlib.sha256(f"{family}\n{dedupe_key}".encode()).digest()[:16])


def fnv1a(text):
    """FNV-1a 64 of the image id, as crates/aws/src/codebuild.rs test_token."""
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x00000100000001B3) % 2**64
    return h


def recorder(calls):
    def record(model, params, **_):
        family = (params.get("Key") or params.get("Item") or {}).get("family", {}).get("S")
        for v in params.get("environmentVariablesOverride", []):
            family = v["value"] if v["name"] == "GILD_FAMILY" else family
        if model.name == "StartBuild":
            STARTS.setdefault(params["projectName"], {})[family] = copy.deepcopy(params)
        calls.append((model.service_model.service_name, model.name, family))
    return record


def main():
    moto, endpoint = start_moto()
    try:
        run(endpoint)
    finally:
        moto.kill()
        moto.wait()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def run(endpoint):
    codecommit_server, codecommit = serve(CodeCommit)
    proxy_server, proxy = serve(recording_proxy(endpoint))
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_CODECOMMIT": f"http://{codecommit}",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "GILD_REPOSITORY": REPOSITORY,
        "GILD_LEDGER_TABLE": "gild-ledger",
        "GILD_BAKE_PROJECT": "gild-bake",
        "GILD_TEST_PROJECT": "gild-test",
        "GILD_TRACKED_BRANCH": "main",
    }
    for name in list(os.environ):
        if name.startswith(("AWS_", "GILD_")):
            del os.environ[name]
    os.environ.update(env)
    import boto3

    env["GILD_TOPIC_ARN"] = os.environ["GILD_TOPIC_ARN"] = create_stack(boto3)
    sys.path.insert(0, str(HERE))
    from gild_peer import bake_finished, trigger

    calls = []
    for c in (trigger.codecommit, trigger.codebuild, trigger.ledger.dynamodb,
              bake_finished.ledger.dynamodb, bake_finished.ec2, bake_finished.codebuild):
        c.meta.events.register("before-parameter-build", recorder(calls))
    dynamodb, codebuild, ec2 = boto3.client("dynamodb"), boto3.client("codebuild"), boto3.client("ec2")

    def item(family, key="schedule:2026-11", table="gild-ledger"):
        raw = dynamodb.get_item(TableName=table, Key={"family": {"S": family}, "dedupe_key": {"S": key}})["Item"]
        return {k: v.get("S", v.get("N")) for k, v in raw.items()}

    # --- the slot count, as the cases of crates/core/src/queue.rs.
    def rec(family, state, lease_until=0, build_id=None):
        return {"family": family, "state": state, "lease_until": lease_until, "build_id": build_id}

    active = [rec("a", "baking", build_id="gild-bake:a"), rec("b", "baked", build_id="gild-bake:b"),
              rec("c", "testing", build_id="gild-bake:c"), rec("d", "validated"), rec("e", "queued"),
              rec("f", "requested", lease_until=160)]
    check("free_slots: a live claim holds a slot", trigger.free_slots(active, 6, 100) == 2)
    check("free_slots: a claim past its lease without a build holds none", trigger.free_slots(active, 6, 200) == 3)
    check("free_slots: never below zero", trigger.free_slots(active, 2, 100) == 0)
    check("free_slots: a claim with a build holds one",
          trigger.free_slots([rec("g", "requested", build_id="gild-bake:g")], 1, 200) == 0)
    check("GILD_MAX_PARALLEL_BUILDS defaults to 20", trigger.MAX_PARALLEL == 20, trigger.MAX_PARALLEL)

    # --- trigger: the monthly schedule starts one bake per family.
    schedule = json.loads((EVENTS / "schedule.json").read_text())
    schedule["time"] = "2026-11-11T03:00:00Z"
    outcome = trigger.handler(schedule, None)
    check("trigger starts one build per family",
          sorted(s["family"] for s in outcome["started"]) == FAMILIES and not outcome["duplicates"], outcome)
    check("trigger's outcome has the dedupe key", {s["dedupe_key"] for s in outcome["started"]} == {"schedule:2026-11"}, outcome)
    check("trigger queues nothing with 20 slots", outcome["queued"] == [], outcome)
    check("trigger: GetBranch, GetFile, then one Query of the active index before any claim",
          [c[:2] for c in calls[:3]] == [("codecommit", "GetBranch"), ("codecommit", "GetFile"),
                                         ("dynamodb", "Query")], calls[:3])
    for family in FAMILIES:
        mine = [c[:2] for c in calls if c[2] == family]
        check(f"trigger: {family} claim, StartBuild, advance", mine == [
            ("dynamodb", "PutItem"), ("codebuild", "StartBuild"), ("dynamodb", "UpdateItem")], mine)
    check("trigger makes 12 calls", len(calls) == 12, calls)
    ids = codebuild.list_builds_for_project(projectName="gild-bake")["ids"]
    check("moto holds three bake builds", len(ids) == 3, ids)
    started = {s["family"]: s["build_id"] for s in outcome["started"]}
    check("the started builds are moto's", sorted(ids) == sorted(started.values()), (ids, started))
    for family in FAMILIES:
        record = item(family)
        check(f"ledger {family}: baking with its build", record["state"] == "baking"
              and record["build_id"] == started[family] and record["commit"] == TIP
              and record["trigger"] == "schedule" and record["lease_until"] == "0" and record.get("owner")
              and record.get("active") == "yes", record)
        sent = STARTS["gild-bake"][family]
        token = bake_token(family, "schedule:2026-11")
        check(f"StartBuild of {family}: project, commit, token, variables", sent == {
            "projectName": "gild-bake", "sourceVersion": TIP, "idempotencyToken": token,
            "environmentVariablesOverride": [
                {"name": "GILD_FAMILY", "value": family, "type": "PLAINTEXT"},
                {"name": "GILD_TRIGGER", "value": "schedule", "type": "PLAINTEXT"},
                {"name": "GILD_SOURCE_COMMIT", "value": TIP, "type": "PLAINTEXT"},
                {"name": "GILD_DEDUPE_KEY", "value": "schedule:2026-11", "type": "PLAINTEXT"}]}, sent)

    # --- a redelivery (same month) starts nothing.
    calls.clear()
    again = trigger.handler(schedule | {"time": "2026-11-11T03:05:00Z"}, None)
    check("redelivery starts nothing", not again["started"] and len(again["duplicates"]) == 3
          and all(d["state"] == "baking" for d in again["duplicates"]), again)
    check("redelivery: GetBranch, GetFile, Query, a refused PutItem per family",
          [c[:2] for c in calls[:3]] == [("codecommit", "GetBranch"), ("codecommit", "GetFile"), ("dynamodb", "Query")]
          and [c[:2] for c in calls[3:]] == [("dynamodb", "PutItem")] * 3, calls)
    check("redelivery queues nothing", again["queued"] == [], again)
    check("still three bake builds", len(codebuild.list_builds_for_project(projectName="gild-bake")["ids"]) == 3)

    # --- bake_finished: the bake of the first family succeeded.
    family = FAMILIES[0]
    build = {"id": started[family], "env": STARTS["gild-bake"][family]["environmentVariablesOverride"]}
    image, snapshots = baked_image(ec2, build["id"])
    check("the stand-in image has a snapshot", len(snapshots) == 1, snapshots)
    calls.clear()
    report = bake_finished.handler(bake_event(build, image), None)
    check("bake_finished reaches baked then testing", report["reached"] == ["baked", "testing"], report)
    expected = [("dynamodb", "GetItem"), ("dynamodb", "UpdateItem"), ("ec2", "DescribeImages"), ("ec2", "CreateTags"),
                ("dynamodb", "UpdateItem"), ("dynamodb", "GetItem"), ("dynamodb", "UpdateItem"),
                ("codebuild", "StartBuild"), ("ec2", "CreateTags"), ("dynamodb", "UpdateItem"), ("dynamodb", "GetItem")]
    check("bake_finished call sequence", [c[:2] for c in calls] == expected, calls)
    tags = {t["Key"]: t["Value"] for t in ec2.describe_images(ImageIds=[image])["Images"][0]["Tags"]}
    check("AMI carries provenance and gild:state=testing", tags == {
        "gild:managed": "true", "gild:family": family, "gild:trigger": "schedule", "gild:source-commit": TIP,
        "gild:build-id": build["id"], "gild:base-ami": "ami-0base0000000000000", "gild:state": "testing",
        "gild:created-at": "2026-11-11T04:00:00Z",
        "gild:build-log": "https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEvent:group=/aws/codebuild/gild-bake;stream=3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7",
    }, tags)
    snap_tags = {t["Key"]: t["Value"] for t in ec2.describe_snapshots(SnapshotIds=snapshots)["Snapshots"][0]["Tags"]}
    check("snapshot carries provenance (state baked)", snap_tags.get("gild:family") == family
          and snap_tags.get("gild:state") == "baked" and snap_tags.get("gild:build-id") == build["id"], snap_tags)
    tests = codebuild.list_builds_for_project(projectName="gild-test")["ids"]
    check("one test build started", len(tests) == 1, tests)
    sent = STARTS["gild-test"][family]
    check("test StartBuild: project, commit, token, variables", sent == {
        "projectName": "gild-test", "sourceVersion": TIP,
        "idempotencyToken": f"test-{bake_token(family, 'schedule:2026-11')}-{fnv1a(image):016x}",
        "environmentVariablesOverride": [
            {"name": "GILD_FAMILY", "value": family, "type": "PLAINTEXT"},
            {"name": "GILD_AMI_ID", "value": image, "type": "PLAINTEXT"},
            {"name": "GILD_DEDUPE_KEY", "value": "schedule:2026-11", "type": "PLAINTEXT"},
            {"name": "GILD_SOURCE_COMMIT", "value": TIP, "type": "PLAINTEXT"}]}, sent)
    record = item(family)
    check("ledger moved on to testing, still active", record["state"] == "testing" and record["image"] == image
          and record["test_build_id"] == tests[0] and record["lease_until"] == "0"
          and record.get("active") == "yes", record)

    calls.clear()
    duplicate = bake_finished.handler(bake_event(build, image), None)
    check("a redelivered bake event finds nothing to do", duplicate.get("noop") and not duplicate["reached"]
          and [c[:2] for c in calls] == [("dynamodb", "GetItem")], (duplicate, calls))

    # --- the same, each through awslambdaric, with the recording proxy before moto.
    ric_env = {**env, "AWS_ENDPOINT_URL": f"http://{proxy}", "AWS_LAMBDA_FUNCTION_NAME": "gild-peer",
               "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
               "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11", "TZ": ":UTC", "LANG": "en_US.UTF-8"}
    RECORDED.clear()
    answer, output = run_through_ric("gild_peer.trigger.handler", schedule | {"time": "2026-12-09T03:00:00Z"}, ric_env)
    check("awslambdaric runs trigger (December: three new bakes)", answer and answer[0] == "response"
          and len(answer[1]["started"]) == 3, (answer, output[-2000:]))
    check("wire: trigger's operations", RECORDED[:3] == [("codecommit", "GetBranch"), ("codecommit", "GetFile"),
                                                         ("dynamodb", "Query")]
          and sorted(RECORDED[3:]) == sorted([("dynamodb", "PutItem"), ("codebuild", "StartBuild"),
                                              ("dynamodb", "UpdateItem")] * 3), RECORDED)
    family = FAMILIES[1]
    build = {"id": started[family], "env": STARTS["gild-bake"][family]["environmentVariablesOverride"]}
    image, _ = baked_image(ec2, build["id"])
    RECORDED.clear()
    answer, output = run_through_ric("gild_peer.bake_finished.handler", bake_event(build, image), ric_env)
    check("awslambdaric runs bake_finished", answer and answer[0] == "response"
          and answer[1]["reached"] == ["baked", "testing"], (answer, output[-2000:]))
    check("wire: bake_finished's operations", RECORDED == [(s, o) for s, o in expected], RECORDED)

    RECORDED.clear()
    answer, output = run_through_ric("gild_peer.bake_finished.handler",
                                     copy.deepcopy(bake_event(build, image)) | {"detail-type": "Scheduled Event",
                                                                                "source": "aws.events"}, ric_env)
    check("awslambdaric: an unrelated event is a no-op with no call", answer and answer[0] == "response"
          and answer[1].get("noop") and not RECORDED, (answer, RECORDED))
    missing = {k: v for k, v in ric_env.items() if k != "GILD_LEDGER_TABLE"}
    answer, output = run_through_ric("gild_peer.trigger.handler", schedule, missing)
    check("awslambdaric: a missing variable fails the init, naming it", answer and answer[0] == "error"
          and "GILD_LEDGER_TABLE" in answer[1].get("errorMessage", ""), (answer, output[-1500:]))

    queue_tests(ric_env, item, dynamodb, codebuild)
    limit_test(trigger, schedule, calls, item, codebuild)
    codecommit_server.shutdown()
    proxy_server.shutdown()


def ledger_state(dynamodb, table):
    """Every item of a ledger table, attribute by attribute."""
    items = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    return sorted(({k: v.get("S", v.get("N")) for k, v in i.items()} for i in items),
                  key=lambda i: (i["family"], i["dedupe_key"]))


def queue_tests(ric_env, item, dynamodb, codebuild):
    """GILD_MAX_PARALLEL_BUILDS=1, three families, a ledger of their own: one
    bake starts, two queue; a redelivery changes nothing."""
    create_ledger(dynamodb, "gild-ledger-queue")
    env = {**ric_env, "GILD_LEDGER_TABLE": "gild-ledger-queue", "GILD_MAX_PARALLEL_BUILDS": "1"}
    event = json.loads((EVENTS / "schedule.json").read_text()) | {"time": "2027-01-13T03:00:00Z"}
    key = "schedule:2027-01"
    builds_before = len(codebuild.list_builds_for_project(projectName="gild-bake")["ids"])
    RECORDED.clear()
    answer, output = run_through_ric("gild_peer.trigger.handler", event, env)
    outcome = answer[1] if answer and answer[0] == "response" else {}
    check("queue: limit 1, three families: one bake starts, two queue",
          len(outcome.get("started", [])) == 1 and len(outcome.get("queued", [])) == 2
          and not outcome.get("duplicates"), (answer, output[-2000:]))
    started = {s["family"] for s in outcome.get("started", [])}
    queued = [q["family"] for q in outcome.get("queued", [])]
    check("queue: every family either started or queued, queued ones sorted",
          sorted(started | set(queued)) == FAMILIES and queued == sorted(queued)
          and all(q == {"family": q["family"], "dedupe_key": key} for q in outcome.get("queued", [])), outcome)
    check("queue wire: GetBranch, GetFile, Query, then 3 PutItem, 1 StartBuild, 3 UpdateItem",
          RECORDED[:3] == [("codecommit", "GetBranch"), ("codecommit", "GetFile"), ("dynamodb", "Query")]
          and sorted(RECORDED[3:]) == sorted([("dynamodb", "PutItem")] * 3 + [("codebuild", "StartBuild")]
                                             + [("dynamodb", "UpdateItem")] * 3), RECORDED)
    check("queue: one new bake build in CodeBuild",
          len(codebuild.list_builds_for_project(projectName="gild-bake")["ids"]) == builds_before + 1)
    for family in FAMILIES:
        record = item(family, key, "gild-ledger-queue")
        if family in started:
            ok = record["state"] == "baking" and record.get("build_id", "").startswith("gild-bake:")
        else:
            ok = record["state"] == "queued" and "build_id" not in record
        check(f"queue ledger {family}: {'baking' if family in started else 'queued'}, active, lease freed",
              ok and record.get("active") == "yes" and record["lease_until"] == "0"
              and record["commit"] == TIP and record.get("owner"), record)
    before = ledger_state(dynamodb, "gild-ledger-queue")

    RECORDED.clear()
    answer, output = run_through_ric("gild_peer.trigger.handler", event, env)
    again = answer[1] if answer and answer[0] == "response" else {}
    check("queue redelivery: nothing started or queued, three duplicates",
          again.get("started") == [] and again.get("queued") == [] and len(again.get("duplicates", [])) == 3,
          (answer, output[-2000:]))
    check("queue redelivery: the duplicates are as the ledger holds them",
          sorted((d["family"], d["state"], bool(d["build_id"])) for d in again.get("duplicates", []))
          == sorted((f, "baking" if f in started else "queued", f in started) for f in FAMILIES), again)
    check("queue redelivery wire: GetBranch, GetFile, Query, 3 refused PutItem",
          RECORDED == [("codecommit", "GetBranch"), ("codecommit", "GetFile"), ("dynamodb", "Query")]
          + [("dynamodb", "PutItem")] * 3, RECORDED)
    check("queue redelivery: no new build, ledger unchanged",
          len(codebuild.list_builds_for_project(projectName="gild-bake")["ids"]) == builds_before + 1
          and ledger_state(dynamodb, "gild-ledger-queue") == before)

    # The Query's records count: next month, limit 2, the one baking bake
    # holds a slot (the two queued do not), so one more starts and two queue.
    answer, output = run_through_ric("gild_peer.trigger.handler", event | {"time": "2027-02-10T03:00:00Z"},
                                     env | {"GILD_MAX_PARALLEL_BUILDS": "2"})
    outcome = answer[1] if answer and answer[0] == "response" else {}
    check("queue: slots held per the active index (limit 2, one baking: one starts)",
          len(outcome.get("started", [])) == 1 and len(outcome.get("queued", [])) == 2, (answer, output[-2000:]))

    # A bake reaching a terminal state leaves the index (REMOVE #active).
    from gild_peer.ledger import Ledger
    ledger = Ledger(dynamodb, "gild-ledger-queue")
    waiting = next(f for f in FAMILIES if f not in started)
    in_index = {(r["family"], r["dedupe_key"]) for r in ledger.active()}
    check("Query lists the six bakes, baking and queued", len(in_index) == 6 and (waiting, key) in in_index, in_index)
    check("advance to failed", ledger.advance(waiting, key, "queued", "failed", {"reason": "test"}, int(time.time())))
    record = item(waiting, key, "gild-ledger-queue")
    check("a failed bake has no `active`", record["state"] == "failed" and "active" not in record, record)
    check("...and is not in the active index",
          (waiting, key) not in {(r["family"], r["dedupe_key"]) for r in ledger.active()})

    # Every page of the Query, the next asked for from LastEvaluatedKey.
    class Pages:
        def __init__(self):
            self.requests = []

        def query(self, **request):
            self.requests.append(copy.deepcopy(request))
            one = {k: {"S": v} if k not in ("requested_at", "updated_at", "lease_until") else {"N": "1"}
                   for k, v in (("family", f"f{len(self.requests)}"), ("dedupe_key", key), ("state", "queued"),
                                ("trigger", "schedule"), ("requested_at", 1), ("updated_at", 1), ("lease_until", 0))}
            last = {"LastEvaluatedKey": {"family": one["family"]}} if len(self.requests) < 3 else {}
            return {"Items": [one], **last}

    pages = Pages()
    records = Ledger(pages, "gild-ledger-queue").active()
    first = {"TableName": "gild-ledger-queue", "IndexName": "active", "KeyConditionExpression": "#active = :yes",
             "ExpressionAttributeNames": {"#active": "active"}, "ExpressionAttributeValues": {":yes": {"S": "yes"}}}
    check("Query: every page, each next from LastEvaluatedKey", [r["family"] for r in records] == ["f1", "f2", "f3"]
          and pages.requests == [first, first | {"ExclusiveStartKey": {"family": {"S": "f1"}}},
                                 first | {"ExclusiveStartKey": {"family": {"S": "f2"}}}], pages.requests)


def limit_test(trigger, schedule, calls, item, codebuild):
    """CodeBuild refusing with AccountLimitExceededException queues the bake
    instead of failing the event (no retry), and the rest queue as well."""
    from botocore.exceptions import ClientError

    refused = []

    def full(**params):
        refused.append(params["environmentVariablesOverride"][0]["value"])
        raise ClientError({"Error": {"Code": "AccountLimitExceededException",
                                     "Message": "Cannot have more than 1 builds in queue for the account"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "StartBuild")

    builds_before = len(codebuild.list_builds_for_project(projectName="gild-bake")["ids"])
    real = trigger.codebuild.start_build
    trigger.codebuild.start_build = full
    try:
        outcome = trigger.handler(schedule | {"time": "2027-03-10T03:00:00Z"}, None)
    finally:
        trigger.codebuild.start_build = real
    check("a full account queues every bake, failing nothing",
          outcome["started"] == [] and [q["family"] for q in outcome["queued"]] == FAMILIES, outcome)
    check("the account limit is asked about at most once per family", 1 <= len(refused) <= 3
          and len(set(refused)) == len(refused), refused)
    for family in FAMILIES:
        record = item(family, "schedule:2027-03")
        check(f"limit ledger {family}: queued, active, no build", record["state"] == "queued"
              and record.get("active") == "yes" and "build_id" not in record and record["lease_until"] == "0", record)
    check("no bake build started", len(codebuild.list_builds_for_project(projectName="gild-bake")["ids"]) == builds_before)


if __name__ == "__main__":
    sys.exit(main())
