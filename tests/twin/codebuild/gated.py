"""The buildspecs under the stack's own roles (issue 11, twin items a and c).

A world for the gated tests, started as the Rust harness and `make demo`
start it (tools/twin_run_build.py's docstring): moto with base-amis.json; a
VPC, subnet and security group, then infra/template.yaml deployed into it
(tools/twin_stack_deploy.py, .venv/stack); the SSM proxy upstream of moto;
the IAM gate (.venv/iam) judging the deployed stack's names, with SSM
routed to the proxy. Builds run through tools/twin_run_build.py under the
project's service role's keys, so every AWS call goes through the gate.

Gates and proxies are started on demand: a gate over a copy of the template
with one grant removed, or a proxy told to fail a check, share the world's
moto and stack.

The stack deployed is infra/template.yaml with what the bill of materials
(issue 14) asks of it, until the template has it (`with_bom`): the bake
project's GILD_ARTIFACT_BUCKET and the bake role's s3:PutObject on
bom/* of the artifact bucket, exactly the additions handed over for
infra/template.yaml.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from cbtwin import HERE, REGION, REPO, SHARED_BIN, free_port, wait_http

STACK_PYTHON = REPO / ".venv" / "stack" / "bin" / "python"
IAM_PYTHON = REPO / ".venv" / "iam" / "bin" / "python"
TEMPLATE = REPO / "infra" / "template.yaml"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


# What bake.yml's bill of materials needs from infra/template.yaml.
BOM_GRANT = """\
              # Every image's bill of materials, by AMI (bake.yml), for
              # the package diff of the next bake.
              - Sid: KeepBillsOfMaterials
                Effect: Allow
                Action: s3:PutObject
                Resource: !Sub ${ArtifactBucket.Arn}/bom/*
"""
BOM_GRANT_BEFORE = "              - Sid: FindTheArtifactBucket\n"
BOM_ENV = "          - {Name: GILD_ARTIFACT_BUCKET, Value: !Ref ArtifactBucket}\n"
# The bake project's last variable (the test project's list ends the same).
BOM_ENV_AFTER = "          - {Name: GILD_PROJECT_PREFIX, Value: !Ref ProjectPrefix}\n"


def with_bom(text: str) -> str:
    """infra/template.yaml with the bake's bill-of-materials additions, when
    it does not have them yet."""
    if "/bom/*" not in text:
        assert text.count(BOM_GRANT_BEFORE) == 1, BOM_GRANT_BEFORE
        text = text.replace(BOM_GRANT_BEFORE, BOM_GRANT + BOM_GRANT_BEFORE)
    if "GILD_ARTIFACT_BUCKET" not in text:
        # The first such line is the bake project's (BakeProject comes first).
        at = text.index(BOM_ENV_AFTER) + len(BOM_ENV_AFTER)
        assert "BakeProject" in text[:at] and "TestProject" not in text[:at]
        text = text[:at] + BOM_ENV + text[at:]
    return text


def _need(path: Path, target: str) -> None:
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make {target}` first")


class Gate:
    """One IAM gate process and its decision log."""

    def __init__(self, world, name, template, ssm_url):
        self.dir = world.tmp / f"gate-{name}"
        self.dir.mkdir()
        self.creds = self.dir / "creds.json"
        self.log = self.dir / "decisions.jsonl"
        proc = subprocess.Popen(
            [str(IAM_PYTHON), "-m", "tests.twin.iam.gate",
             "--upstream", world.moto, "--template", str(template), "--port", "0",
             "--stack-json", str(world.stack_json), "--credentials-out", str(self.creds),
             "--decisions-out", str(self.log), "--route", f"ssm={ssm_url}"],
            cwd=REPO, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        world.procs.append(proc)
        line = proc.stdout.readline().split() if proc.stdout else []
        if line[:1] != ["listening"]:
            pytest.fail(f"the gate did not start: {line}")
        self.url = f"http://127.0.0.1:{line[1]}"

    def decisions(self, start: int = 0) -> list[dict]:
        if not self.log.exists():
            return []
        lines = self.log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines[start:]]


class World:
    """moto + the deployed stack, and the gates and SSM proxies over them."""

    def __init__(self, tmp: Path, procs: list):
        _need(STACK_PYTHON, "stack-check")
        _need(IAM_PYTHON, "iam-check")
        self.tmp, self.procs = tmp, procs
        self.template = tmp / "template.yaml"
        self.template.write_text(
            with_bom(TEMPLATE.read_text(encoding="utf-8")), encoding="utf-8"
        )
        moto_exe = os.environ.get("GILD_MOTO_SERVER") or str(
            SHARED_BIN / "gild-moto-server"
        )
        _need(Path(moto_exe), "tools")
        port = free_port()
        env = dict(os.environ, MOTO_AMIS_PATH=str(HERE / "base-amis.json"))
        with open(tmp / "moto.log", "w", encoding="utf-8") as log:
            moto = subprocess.Popen(
                [moto_exe, "-H", "127.0.0.1", "-p", str(port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        procs.append(moto)
        self.moto = f"http://127.0.0.1:{port}"
        wait_http(f"{self.moto}/moto-api/", moto, "moto")
        self.clients: dict = {}
        ec2 = self.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.90.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.90.1.0/24")["Subnet"][
            "SubnetId"
        ]
        sg = ec2.create_security_group(
            GroupName="gild-builders", Description="no inbound", VpcId=vpc
        )["GroupId"]
        self.stack_json = tmp / "stack.json"
        deploy = subprocess.run(
            [str(STACK_PYTHON), str(REPO / "tools" / "twin_stack_deploy.py"),
             "--endpoint", self.moto, "--template", str(self.template),
             "--param", f"VpcId={vpc}", "--param", f"SubnetId={subnet}",
             "--param", f"SecurityGroupId={sg}", "--out", str(self.stack_json)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if deploy.returncode != 0:
            pytest.fail(f"the stack did not deploy:\n{deploy.stdout}\n{deploy.stderr}")
        self.stack = json.loads(self.stack_json.read_text())
        self.proxies: dict = {}
        self.gates: dict = {}
        self.builds = 0

    def client(self, service):
        """A client straight to moto (set-up and checks, not the builds)."""
        if service not in self.clients:
            from awscli.botocore.session import get_session

            self.clients[service] = get_session().create_client(
                service,
                region_name=REGION,
                endpoint_url=self.moto,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self.clients[service]

    def proxy(self, *args: str) -> str:
        """An SSM proxy upstream of moto, started once per set of options."""
        if args not in self.proxies:
            port_file = self.tmp / f"ssm-{len(self.proxies)}.port"
            proc = subprocess.Popen(
                [sys.executable, str(REPO / "tools" / "codebuild_ssm_proxy.py"),
                 "--moto", self.moto, "--source", str(REPO),
                 "--port-file", str(port_file), *args],
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            self.procs.append(proc)
            deadline = time.monotonic() + 20
            while not (port_file.exists() and port_file.read_text()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the SSM proxy did not start")
                time.sleep(0.05)
            url = f"http://127.0.0.1:{port_file.read_text()}"
            wait_http(f"{url}/moto-api/", proc, "the SSM proxy")
            self.proxies[args] = url
        return self.proxies[args]

    def gate(self, name: str = "stack", template: Path | None = None, proxy=()) -> Gate:
        """A gate over ``template`` (the deployed one by default)."""
        template = template or self.template
        key = (name, str(template), tuple(proxy))
        if key not in self.gates:
            self.gates[key] = Gate(
                self, f"{name}-{len(self.gates)}", template, self.proxy(*proxy)
            )
        return self.gates[key]

    def output(self, name: str) -> str:
        return self.stack["Outputs"][name]

    def run(
        self, project: str, family: str, gate: Gate | None = None, env=(), expect=None
    ):
        """One build of the deployed project through tools/twin_run_build.py;
        the result, with its log and the gate's decisions for it."""
        gate = gate or self.gate()
        self.builds += 1
        build_id = f"{project}:{uuid.uuid4()}"
        work = self.tmp / f"build-{self.builds}"
        result = self.tmp / f"result-{self.builds}.json"
        start = len(gate.decisions())
        cmd = [sys.executable, str(REPO / "tools" / "twin_run_build.py"),
               "--moto", self.moto, "--gate", gate.url,
               "--stack-json", str(self.stack_json), "--credentials", str(gate.creds),
               "--project", project, "--build-id", build_id, "--source", str(REPO),
               "--source-version", COMMIT, "--work", str(work), "--result", str(result),
               "--python", sys.executable]  # fmt: skip
        base = {
            "GILD_FAMILY": family,
            "GILD_TRIGGER": "push",
            "GILD_SOURCE_COMMIT": COMMIT,
            "GILD_DEDUPE_KEY": f"push:{COMMIT}",
            **dict(env),
        }
        for name, value in base.items():
            cmd += ["--env", f"{name}={value}"]
        began = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(result.read_text())
        data["seconds"] = time.monotonic() - began
        data["log"] = (work / "build.log").read_text(encoding="utf-8")
        data["decisions"] = gate.decisions(start)
        data["standins"] = work / "standins.jsonl"
        if expect is not None:
            assert data["buildStatus"] == expect, data["log"][-6000:]
        return data


def exported(result, name):
    for item in result.get("exportedEnvironmentVariables", []):
        if item["name"] == name:
            return item["value"]
    return None


def refused(result) -> list[dict]:
    return [d for d in result["decisions"] if not d["allowed"]]


def assert_all_allowed(result, role):
    """Every call of the build went through the gate under ``role``, was
    mapped, and was allowed."""
    decisions = result["decisions"]
    assert decisions, "the build made no call through the gate"
    assert not [d for d in decisions if d.get("unmapped")], [
        (d["action"], d.get("mapping_error")) for d in decisions if d.get("unmapped")
    ]
    assert not refused(result), [(d["action"], d["reason"]) for d in refused(result)]
    assert {d["role"] for d in decisions} == {role}
