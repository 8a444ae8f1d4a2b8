#!/usr/bin/env python3
"""A loopback proxy in front of moto that stands in for SSM Run Command's far end.

    codebuild_ssm_proxy.py --moto http://127.0.0.1:PORT --source DIR \\
        [--fail NAME=CHECK]... [--fail-file F] [--lose RunInstances] --port-file F

Why: moto records SendCommand but runs nothing, has no SSM agent, and does
not implement DescribeInstanceInformation. test.yml needs all three to
prove an image. Everything else goes to moto unchanged (same method, path,
headers and body), so the AWS CLI in the buildspec talks to moto as before.
Only these SSM actions (JSON protocol, X-Amz-Target: AmazonSSM.<Action>)
are answered here, with AWS's response shapes:

- DescribeInstanceInformation: an instance is `Online` once a RunInstances
  response through this proxy named it (its agent "registered"), or, when
  the launch went to moto another way (the IAM gate sends only SSM here:
  `--route ssm=<this proxy>`), once moto reports it `running` with an
  instance profile, as an agent needs one to register;
- SendCommand: forwarded to moto (which records it and picks the
  CommandId); the script is taken out of the document's parameters the way
  the instance would (base64 of gzip, test.yml's encoding) and must be
  byte-identical to a test script of the catalog in --source (gild.toml):
  a family's, as test.yml sends it (composed by --source's
  buildspecs/bootstrap/family.py: the own tests of the family's chain, then
  its template's), or a consumer's `<tests>/run.sh` or `run.ps1`;
- GetCommandInvocation / ListCommandInvocations: that script's result. The
  script itself does NOT run (no instance exists): its output is one TAP
  line per check name the script declares (`check "..."`, `ok "..."`,
  `Test-Check "..."`, ...), each `ok` unless --fail NAME=CHECK (or a NAME=CHECK line of --fail-file,
  read again for every answer) names it,
  NAME being the family or the consumer whose script it is, then
  `not ok - CHECK: ...`, Status Failed and ResponseCode 1.

--lose RunInstances forwards RunInstances (the instance is created) but
answers 500, as a lost response would: the launch "fails" with an instance
left running, which test.yml must still terminate.
"""

import argparse
import base64
import gzip
import importlib.util
import json
import re
import sys
import threading
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HANDLED = {
    "DescribeInstanceInformation",
    "SendCommand",
    "GetCommandInvocation",
    "ListCommandInvocations",
}
# Check names as the test scripts declare them (literal strings only).
CHECK = re.compile(
    r"""\b(?:check|ok|not_ok|skip|Test-Check|Write-Pass|Write-Fail|Write-Skip)\s+(["'])([^"'$`]+)\1"""
)
PAYLOAD = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")
INSTANCE_ID = re.compile(rb"<instanceId>(i-[0-9a-f]+)</instanceId>")
STATE = re.compile(rb"<instanceState>\s*<code>\d+</code>\s*<name>([a-z-]+)</name>")
SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/")
# A test script's file name by OS (buildspecs/bootstrap/family.py's SCRIPTS).
SCRIPT_NAMES = {"linux": "run.sh", "windows": "run.ps1"}


def family_reader(source):
    """--source's buildspecs/bootstrap/family.py, the reader test.yml runs."""
    path = Path(source) / "buildspecs" / "bootstrap" / "family.py"
    spec = importlib.util.spec_from_file_location(f"gild_family_{id(path)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scripts(source):
    """{script bytes: (family or consumer name, os)} for every test script
    of the catalog: each family's, then each consumer's (a family's wins
    should two be the same bytes). A family the reader refuses has none."""
    catalog_file = Path(source) / "gild.toml"
    with open(catalog_file, "rb") as f:
        catalog = tomllib.load(f)
    reader = family_reader(source)
    scripts = {}
    for name, family in catalog.get("families", {}).items():
        os_name = family.get("os")
        try:
            if hasattr(reader, "test_script"):
                script = reader.test_script(name, str(catalog_file))
            else:  # a revision before shared templates: <path>/tests/<script>
                path = str(family.get("path", "")).rstrip("/")
                own = (
                    Path(source) / path / "tests" / SCRIPT_NAMES.get(os_name, "run.ps1")
                )
                script = own.read_bytes()
        except (OSError, ValueError):
            continue
        scripts.setdefault(script, (name, os_name))
    for name, consumer in catalog.get("consumers", {}).items():
        tests = str(consumer.get("tests", "")).rstrip("/")
        for os_name, file_name in SCRIPT_NAMES.items():
            script = Path(source) / tests / file_name
            if tests and script.is_file():
                scripts.setdefault(script.read_bytes(), (name, os_name))
    return scripts


def check_names(script):
    """The script's own check names, in order, once each."""
    names = []
    for match in CHECK.finditer(script.decode("utf-8", "replace")):
        name = match.group(2).strip()
        if name and name not in names:
            names.append(name)
    return names or ["test script ran"]


class State:
    """What the proxy remembers between requests."""

    def __init__(self, args):
        self.moto = args.moto.rstrip("/")
        self.scripts = test_scripts(args.source)
        self.fail = {}
        for item in args.fail:
            name, _, check = item.partition("=")
            self.fail.setdefault(name, set()).add(check)
        # NAME=CHECK lines, read again for every answer: a driver (make
        # demo) changes which checks fail between two builds.
        self.fail_file = Path(args.fail_file) if args.fail_file else None
        self.lose = set(args.lose)
        self.online = set()
        self.invocations = {}
        self.lock = threading.Lock()

    def result(self, parameters):
        """The invocation a real agent would report for these parameters."""
        commands = "\n".join(parameters.get("commands", []))
        script = None
        for payload in PAYLOAD.findall(commands):
            try:
                script = gzip.decompress(base64.b64decode(payload))
                break
            except (ValueError, OSError, EOFError):
                continue
        if script is None or script not in self.scripts:
            return {
                "Status": "Failed",
                "ResponseCode": 1,
                "StandardOutputContent": "",
                "StandardErrorContent": "ssm stand-in: the command carries no test script of the catalog",
            }
        whose, _ = self.scripts[script]
        failing = set(self.fail.get(whose, set()))
        if self.fail_file is not None and self.fail_file.is_file():
            for line in self.fail_file.read_text(encoding="utf-8").splitlines():
                name, _, check = line.partition("=")
                if name == whose and check:
                    failing.add(check)
        lines = []
        for number, name in enumerate(check_names(script), 1):
            if name in failing:
                lines.append(f"not ok {number} - {name}: failed (ssm stand-in, --fail)")
            else:
                lines.append(f"ok {number} - {name}")
        failed = any(line.startswith("not ok") for line in lines)
        return {
            "Status": "Failed" if failed else "Success",
            "ResponseCode": 1 if failed else 0,
            "StandardOutputContent": "\n".join(lines) + "\n",
            "StandardErrorContent": "",
        }


class Handler(BaseHTTPRequestHandler):
    """Forwards to moto, except the SSM actions above."""

    state: State
    # HTTP/1.1: keep-alive for the CLI and `Expect: 100-continue` answered.
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        """Quiet: moto logs every request already."""

    def reply(self, status, body, headers):
        """Sends one response."""
        self.send_response(status)
        for key, value in headers:
            if (
                key.lower() not in ("transfer-encoding", "connection", "content-length")
                or key.lower() == "content-length"
                and self.command == "HEAD"
            ):
                self.send_header(key, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def forward(self, body):
        """The request, unchanged, to moto; (status, body, headers)."""
        request = urllib.request.Request(
            self.state.moto + self.path,
            data=body if body else None,
            method=self.command,
        )
        for key, value in self.headers.items():
            # urllib cannot do 100-continue; the body is already here.
            if key.lower() not in ("host", "content-length", "connection", "expect"):
                request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read(), response.getheaders()
        except urllib.error.HTTPError as err:
            return err.code, err.read(), err.headers.items()

    def registered(self, instance, region):
        """Whether moto has the instance running with an instance profile
        (DescribeInstances, asked directly, with the caller's region)."""
        form = urllib.parse.urlencode(
            {
                "Action": "DescribeInstances",
                "Version": "2016-11-15",
                "InstanceId.1": instance,
            }
        ).encode()
        request = urllib.request.Request(
            self.state.moto + "/", data=form, method="POST"
        )
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        request.add_header(
            "Authorization",
            f"AWS4-HMAC-SHA256 Credential=ssm-proxy/20260101/{region}/ec2/aws4_request, "
            "SignedHeaders=host, Signature=0",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = response.read()
        except (urllib.error.URLError, OSError):
            return False
        running = [m.group(1) for m in STATE.finditer(answer)] == [b"running"]
        return running and b"<iamInstanceProfile>" in answer

    def ssm(self, action, body):
        """The SSM actions answered here."""
        request = json.loads(body or b"{}")
        state = self.state
        if action == "DescribeInstanceInformation":
            wanted = [
                v
                for f in request.get("Filters", [])
                + request.get("InstanceInformationFilterList", [])
                if f.get("Key", f.get("key")) in ("InstanceIds", "instanceIds")
                for v in f.get("Values", f.get("valueSet", []))
            ]
            region = SCOPE.search(self.headers.get("Authorization", ""))
            region = region.group(1) if region else "us-east-1"
            with state.lock:
                seen = set(state.online)
            ids = [i for i in wanted if i in seen or self.registered(i, region)]
            info = [
                {"InstanceId": i, "PingStatus": "Online", "ResourceType": "EC2Instance"}
                for i in ids
            ]
            return 200, {"InstanceInformationList": info}
        if action == "SendCommand":
            status, raw, _ = self.forward(body)
            if status != 200:
                return status, json.loads(raw or b"{}")
            command = json.loads(raw)["Command"]
            result = state.result(request.get("Parameters", {}))
            with state.lock:
                for instance in request.get("InstanceIds", []):
                    state.invocations[(command["CommandId"], instance)] = {
                        "CommandId": command["CommandId"],
                        "InstanceId": instance,
                        "Comment": request.get("Comment", ""),
                        "DocumentName": request.get("DocumentName", ""),
                        "PluginName": "aws:runShellScript"
                        if request.get("DocumentName") == "AWS-RunShellScript"
                        else "aws:runPowerShellScript",
                        "StatusDetails": result["Status"],
                        **result,
                    }
            return 200, json.loads(raw)
        with state.lock:
            found = [
                v
                for (cid, iid), v in state.invocations.items()
                if cid == request.get("CommandId")
                and request.get("InstanceId") in (None, iid)
            ]
        if action == "GetCommandInvocation":
            if not found:
                return 400, {
                    "__type": "InvocationDoesNotExist",
                    "message": "An error occurred (InvocationDoesNotExist)",
                }
            return 200, found[0]
        return 200, {"CommandInvocations": found}

    def handle_any(self):
        """Every method: route by X-Amz-Target and by EC2 Action."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target", "")
        service, _, action = target.partition(".")
        if service == "AmazonSSM" and action in HANDLED:
            status, payload = self.ssm(action, body)
            data = json.dumps(payload).encode()
            return self.reply(
                status, data, [("Content-Type", "application/x-amz-json-1.1")]
            )
        status, raw, headers = self.forward(body)
        if b"Action=RunInstances" in body:
            with self.state.lock:
                self.state.online.update(i.decode() for i in INSTANCE_ID.findall(raw))
            if "RunInstances" in self.state.lose:
                error = b"<Response><Errors><Error><Code>InternalError</Code><Message>lost (ssm proxy --lose)</Message></Error></Errors></Response>"
                return self.reply(500, error, [("Content-Type", "text/xml")])
        return self.reply(status, raw, headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any


def main(argv):
    """Serve until killed; the port goes to --port-file once listening."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--moto", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--fail", action="append", default=[], metavar="NAME=CHECK")
    p.add_argument("--fail-file", metavar="F")
    p.add_argument("--lose", action="append", default=[], choices=["RunInstances"])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", required=True)
    args = p.parse_args(argv)
    Handler.state = State(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    Path(args.port_file).write_text(str(server.server_address[1]), encoding="utf-8")
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
