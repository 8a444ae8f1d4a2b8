#!/usr/bin/env python3
"""Runs one build of a deployed stack's CodeBuild project, as CodeBuild
would, under the project's service role, through the IAM gate.

    python3 tools/twin_run_build.py --moto URL --gate URL \\
        --stack-json stack.json --credentials creds.json \\
        --project gild-bake --build-id gild-bake:<uuid> --source DIR \\
        --env GILD_FAMILY=debian13-base --env ... [--source-version SHA] \\
        --work DIR --result out.json

For the Rust end-to-end harness and `make demo`: one call per build that
StartBuild started (moto records it but runs nothing). Standard library
only; the build itself runs tools/codebuild_run.py with .venv/awscli's
python (the pinned AWS CLI), as tests/twin/codebuild/cbtwin.py does.

What it reads, as CodeBuild would: the project from moto (BatchGetProjects:
the buildspec path, the environment variables, the S3 artifact location,
path, namespace and name, the log group, the service role); the service
role's logical id from stack.json (the IAM::Role whose physical id the
role ARN names) and that role's keys from the gate's creds.json. Variable
precedence: the buildspec's env.variables, then the project's variables,
then --env (StartBuild's environmentVariablesOverride wins, as in
CodeBuild). GILD_STATE defaults to a folder under --work: each CodeBuild
container has a /tmp of its own, a shared host does not.

Every AWS call of the build (the buildspec's CLI, the packer stand-in, the
artifact upload, and the log written to the project's log group with
CreateLogStream/PutLogEvents) goes to --gate with the role's keys, so a
permission missing from infra/template.yaml fails the build. The result
(--result) is codebuild_run.py's, in BatchGetBuilds' field names, plus
`logs` (group, stream, and the gate's refusal if any). Exit status 0
whenever the build ran, whatever its buildStatus; 2 when it could not be
run (no such project, no keys for its role, the runner crashed).

The world it runs in (each on 127.0.0.1, ports of your choosing):

1. moto, with the base images the packer stand-in looks for:
       MOTO_AMIS_PATH=tests/twin/codebuild/base-amis.json \\
           .venv/bin/gild-moto-server -H 127.0.0.1 -p $MOTO_PORT
2. a VPC, a subnet and a security group created in it (any client, moto's
   test keys), then the stack:
       .venv/stack/bin/python tools/twin_stack_deploy.py \\
           --endpoint http://127.0.0.1:$MOTO_PORT --param VpcId=vpc-... \\
           --param SubnetId=subnet-... --param SecurityGroupId=sg-... \\
           --out stack.json
3. the SSM Run Command stand-in, upstream moto, reading the family test
   scripts from the same source the builds use:
       .venv/awscli/bin/python tools/codebuild_ssm_proxy.py \\
           --moto http://127.0.0.1:$MOTO_PORT --source DIR \\
           --port-file ssm.port [--fail FAMILY=CHECK]
4. the IAM gate, judging the deployed stack's names, SSM sent to the proxy:
       (cd REPO && .venv/iam/bin/python -m tests.twin.iam.gate \\
           --upstream http://127.0.0.1:$MOTO_PORT --port 0 \\
           --stack-json stack.json --credentials-out creds.json \\
           --decisions-out decisions.jsonl \\
           --route ssm=http://127.0.0.1:$(cat ssm.port))
   It prints `listening <port>`: that is --gate.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STANDINS = REPO / "tests" / "twin" / "codebuild" / "standins"
AWSCLI_PYTHON = REPO / ".venv" / "awscli" / "bin" / "python"
SHARED_BIN = REPO / ".venv" / "bin"


class CannotRun(Exception):
    """The build could not be started (exit status 2)."""


def aws_json(endpoint, region, service, target, body, keys=("testing", "testing")):
    """One JSON-protocol call. The signature is not computed: neither moto
    nor the gate checks one; the gate reads the access key and the scope."""
    stamp = datetime.datetime.now(datetime.UTC)
    request = urllib.request.Request(
        endpoint.rstrip("/") + "/", data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/x-amz-json-1.1")
    request.add_header("X-Amz-Target", target)
    request.add_header("X-Amz-Date", stamp.strftime("%Y%m%dT%H%M%SZ"))
    request.add_header(
        "Authorization",
        f"AWS4-HMAC-SHA256 Credential={keys[0]}/{stamp:%Y%m%d}/{region}/{service}/"
        "aws4_request, SignedHeaders=host;x-amz-date, Signature=0",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        raise CannotRun(f"{target}: HTTP {err.code} {err.read()[:300]!r}") from err


def project_of(args) -> dict:
    """The project as CodeBuild holds it (moto's BatchGetProjects)."""
    found = aws_json(
        args.moto,
        args.region,
        "codebuild",
        "CodeBuild_20161006.BatchGetProjects",
        {"names": [args.project]},
    ).get("projects", [])
    if not found:
        raise CannotRun(f"no CodeBuild project {args.project} in {args.moto}")
    return found[0]


def role_keys(project: dict, stack: dict, creds: dict) -> tuple[str, dict]:
    """The service role's logical id and the gate's keys for it."""
    name = project["serviceRole"].rsplit("/", 1)[-1]
    roles = [
        lid
        for lid, res in stack.get("Resources", {}).items()
        if res.get("Type") == "AWS::IAM::Role" and res.get("PhysicalId") == name
    ]
    if len(roles) != 1 or roles[0] not in creds:
        raise CannotRun(
            f"service role {project['serviceRole']}: no gate keys for it "
            f"(stack roles matching: {roles})"
        )
    return roles[0], creds[roles[0]]


def environment(args, project: dict, keys: dict) -> tuple[dict, list[str]]:
    """The runner's process environment and its --env list."""
    work = Path(args.work).resolve()
    (work / "home").mkdir(parents=True, exist_ok=True)
    python_bin = Path(args.python).parent
    env = {
        "PATH": os.pathsep.join(
            [str(python_bin), str(SHARED_BIN), os.environ.get("PATH", "")]
        ),
        "HOME": str(work / "home"),
        "LANG": "C.UTF-8",
        "AWS_ENDPOINT_URL": args.gate,
        "AWS_ACCESS_KEY_ID": keys["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": keys["secret_access_key"],
        "AWS_REGION": args.region,
        "AWS_DEFAULT_REGION": args.region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
        "GILD_STANDIN_LOG": str(args.standin_log or work / "standins.jsonl"),
    }
    variables = [f"GILD_STATE={work / 'state'}"]
    for var in project.get("environment", {}).get("environmentVariables", []):
        if var.get("type", "PLAINTEXT") != "PLAINTEXT":
            raise CannotRun(f"{var['name']}: {var['type']} variables are not resolved")
        variables.append(f"{var['name']}={var['value']}")
    return env, variables + list(args.env)


def runner_command(args, project: dict, variables: list[str]) -> list[str]:
    """tools/codebuild_run.py with the project's buildspec and artifacts."""
    buildspec = project.get("source", {}).get("buildspec") or "buildspec.yml"
    cmd = [str(args.python), str(REPO / "tools" / "codebuild_run.py")]
    cmd += ["--buildspec", buildspec, "--source", str(args.source)]
    cmd += ["--project", args.project, "--build-id", args.build_id]
    cmd += ["--stand-ins", str(STANDINS), "--work", str(Path(args.work).resolve())]
    cmd += ["--result", str(args.result), "--account", args.account]
    cmd += ["--region", args.region]
    if args.source_version:
        cmd += ["--source-version", args.source_version]
    artifacts = project.get("artifacts") or {}
    if artifacts.get("type") == "S3":
        location = "s3://" + artifacts["location"]
        if artifacts.get("path"):
            location += "/" + artifacts["path"].strip("/")
        cmd += ["--artifacts", location]
        cmd += ["--artifacts-namespace", artifacts.get("namespaceType") or "NONE"]
        if artifacts.get("name"):
            cmd += ["--artifacts-name", artifacts["name"]]
        if artifacts.get("overrideArtifactName"):
            cmd += ["--override-artifact-name"]
    for item in variables:
        cmd += ["--env", item]
    return cmd


def write_logs(args, project: dict, keys: dict, log_text: str) -> dict:
    """The build's log into the project's CloudWatch Logs group, with the
    service role through the gate, as CodeBuild writes it."""
    group = (
        project.get("logsConfig", {}).get("cloudWatchLogs", {}).get("groupName")
        or f"/aws/codebuild/{args.project}"
    )
    stream = args.build_id.split(":", 1)[-1]
    out = {"groupName": group, "streamName": stream}
    who = (keys["access_key_id"], keys["secret_access_key"])
    try:
        aws_json(
            args.gate,
            args.region,
            "logs",
            "Logs_20140328.CreateLogStream",
            {"logGroupName": group, "logStreamName": stream},
            who,
        )
        now = int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)
        lines = log_text.splitlines() or ["(no output)"]
        for start in range(0, len(lines), 1000):
            events = [
                {"timestamp": now, "message": line[:200000] or " "}
                for line in lines[start : start + 1000]
            ]
            aws_json(
                args.gate,
                args.region,
                "logs",
                "Logs_20140328.PutLogEvents",
                {"logGroupName": group, "logStreamName": stream, "logEvents": events},
                who,
            )
    except CannotRun as err:
        out["error"] = str(err)
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--moto", required=True, help="moto's URL (the project is read there)"
    )
    p.add_argument(
        "--gate", required=True, help="the IAM gate's URL (the build's endpoint)"
    )
    p.add_argument("--stack-json", required=True, type=Path)
    p.add_argument(
        "--credentials", required=True, type=Path, help="the gate's creds.json"
    )
    p.add_argument("--project", required=True)
    p.add_argument(
        "--build-id", required=True, help="PROJECT:UUID, as StartBuild answered"
    )
    p.add_argument("--source", required=True, type=Path)
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--source-version")
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--result", required=True, type=Path)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--account", default="123456789012")
    p.add_argument("--python", type=Path, default=AWSCLI_PYTHON)
    p.add_argument("--standin-log", type=Path, help="default: WORK/standins.jsonl")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if ":" not in args.build_id:
            args.build_id = f"{args.project}:{args.build_id}"
        project = project_of(args)
        stack = json.loads(args.stack_json.read_text(encoding="utf-8"))
        creds = json.loads(args.credentials.read_text(encoding="utf-8"))
        role, keys = role_keys(project, stack, creds)
        if not args.python.exists():
            raise CannotRun(f"{args.python} is missing: run `make codebuild-tools`")
        env, variables = environment(args, project, keys)
        cmd = runner_command(args, project, variables)
        args.result.unlink(missing_ok=True)
        log_path = Path(args.work).resolve() / "build.log"
        print(
            f"[twin_run_build] {args.build_id} as {role}: {log_path}", file=sys.stderr
        )
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.run(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
            )
        if not args.result.exists():
            raise CannotRun(
                f"the runner exited {proc.returncode} without a result: {log_path}"
            )
        result = json.loads(args.result.read_text(encoding="utf-8"))
        result["serviceRole"] = project["serviceRole"]
        result["logs"] = write_logs(
            args, project, keys, log_path.read_text(encoding="utf-8")
        )
        args.result.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(
            f"[twin_run_build] {args.build_id}: {result['buildStatus']}",
            file=sys.stderr,
        )
        return 0
    except (CannotRun, OSError, KeyError, ValueError) as err:
        print(f"twin_run_build: cannot run {args.build_id}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
