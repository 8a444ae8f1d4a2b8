"""Helpers of the buildspec twin: an account in moto and a way to run builds.

Each test gets its own moto (tools/moto_serial.py, as tests/src/moto.rs
launches it: 127.0.0.1, a free port) started with MOTO_AMIS_PATH=
base-amis.json, the SSM proxy in front of it (tools/codebuild_ssm_proxy.py),
and what the stack would create for the builds: a VPC, subnet and security
groups, a KMS key, the instance profile and the artifact bucket. Builds run
through tools/codebuild_run.py with the pinned AWS CLI (this virtualenv's
`aws`) and the stand-ins in standins/.

Credentials: moto's fixed test keys, unless GILD_TWIN_AWS_ACCESS_KEY_ID and
GILD_TWIN_AWS_SECRET_ACCESS_KEY (and _SESSION_TOKEN) name a role session,
which the runner then passes through unchanged to every command.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
# This virtualenv's bin: the pinned `aws` (v1), and a python3 with hcl2 and
# PyYAML for the runner and the packer stand-in.
TOOLS_BIN = Path(sys.executable).parent
# The shared .venv: moto, and the Ansible bake.yml checks collections with.
SHARED_BIN = REPO / ".venv" / "bin"
STANDINS = HERE / "standins"
REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "gild-artifacts-twin"
REPORT_GROUP = f"arn:aws:codebuild:{REGION}:{ACCOUNT}:report-group/gild-test"
# The base-amis.json image each family's bake starts from (win2022-iis,
# a layered family, is baked from its parent's image: test_bake.py; its
# test images here are made from the base).
BASE_AMI = {
    "debian13-base": "ami-0d3b1a0c0000de13a",
    "win2022-core-dotnet": "ami-0a2022c0000b45e01",
    "win2022-iis": "ami-0a2022c0000b45e01",
}
# The tests import the code they test: the SSM proxy's check-name reader
# (tools/) and the buildspecs' family reader (buildspecs/bootstrap/).
sys.path[:0] = [str(REPO / "tools"), str(REPO / "buildspecs" / "bootstrap")]


def family_script(family):
    """The family's test script as test.yml sends it (family.py composes it)."""
    import family as reader  # buildspecs/bootstrap/family.py

    return reader.test_script(family, str(REPO / "gild.toml"))


def free_port():
    """A port nobody listens on right now (moto retries if it is taken)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, what, timeout=30):
    """Until url answers 2xx; fails loudly when the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 300:
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{what} did not answer {url} within {timeout}s")


class Twin:
    """One emulated account and a way to run buildspecs against it."""

    def __init__(self, tmp, endpoint, moto):
        self.tmp = tmp
        self.endpoint = endpoint
        self.moto = moto
        self.env = {
            "PATH": os.pathsep.join(
                [str(TOOLS_BIN), str(SHARED_BIN), os.environ.get("PATH", "")]
            ),
            "HOME": str(tmp / "home"),
            "LANG": "C.UTF-8",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": os.environ.get(
                "GILD_TWIN_AWS_ACCESS_KEY_ID", "testing"
            ),
            "AWS_SECRET_ACCESS_KEY": os.environ.get(
                "GILD_TWIN_AWS_SECRET_ACCESS_KEY", "testing"
            ),
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
            "GILD_STANDIN_LOG": str(tmp / "standins.jsonl"),
        }
        token = os.environ.get("GILD_TWIN_AWS_SESSION_TOKEN")
        if token:
            self.env["AWS_SESSION_TOKEN"] = token
        (tmp / "home").mkdir(exist_ok=True)
        self.builds = 0
        self.clients = {}

    def client(self, service, direct=False):
        """A client of the pinned CLI's own botocore (awscli.botocore), with
        the same credentials and endpoint as the builds: in-process, so the
        set-up and the checks do not pay a CLI start each. direct=True goes
        to moto itself, past the SSM proxy and its --lose."""
        key = (service, direct)
        if key not in self.clients:
            from awscli.botocore.session import get_session

            session = get_session()
            self.clients[key] = session.create_client(
                service,
                region_name=REGION,
                endpoint_url=self.moto if direct else self.endpoint,
                aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=self.env.get("AWS_SESSION_TOKEN"),
            )
        return self.clients[key]

    def setup_account(self):
        """What the stack gives the builds (names as infra/template.yaml's)."""
        ec2 = self.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.80.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.80.1.0/24")
        self.subnet = subnet["Subnet"]["SubnetId"]
        self.sg = ec2.create_security_group(
            GroupName="gild-build", Description="no inbound", VpcId=vpc
        )["GroupId"]
        self.winrm_sg = ec2.create_security_group(
            GroupName="gild-winrm", Description="winrm from the build", VpcId=vpc
        )["GroupId"]
        self.kms = self.client("kms").create_key()["KeyMetadata"]["Arn"]
        self.profile = "gild-builder"
        self.client("iam").create_instance_profile(InstanceProfileName=self.profile)
        self.client("s3").create_bucket(Bucket=BUCKET)

    def run(self, buildspec, family, env=(), source=REPO, expect=None, **options):
        """Runs one buildspec through the runner; the result JSON."""
        self.builds += 1
        project = "gild-bake" if "bake" in buildspec else "gild-test"
        work = self.tmp / f"build-{self.builds}"
        result = self.tmp / f"result-{self.builds}.json"
        build_id = f"{project}:00000000-0000-4000-8000-{self.builds:012d}"
        base = {
            "GILD_FAMILY": family,
            "GILD_TRIGGER": "push",
            "GILD_SOURCE_COMMIT": "0123456789abcdef0123456789abcdef01234567",
            "GILD_DEDUPE_KEY": f"twin-{self.builds}",
            "GILD_KMS_KEY_ID": self.kms,
            "GILD_SUBNET_ID": self.subnet,
            "GILD_SECURITY_GROUP_ID": self.sg,
            "GILD_WINRM_SECURITY_GROUP_ID": self.winrm_sg,
            "GILD_INSTANCE_PROFILE": self.profile,
            "GILD_ARTIFACT_BUCKET": BUCKET,
            "GILD_REPORT_GROUP_ARN": REPORT_GROUP,
            # Each build its own state folder, as each CodeBuild container
            # has its own /tmp (the buildspecs default to /tmp/gild-*).
            "GILD_STATE": str(work / "state"),
            # The twin answers at once; no need to poll every 15 s.
            "GILD_SSM_ONLINE_TIMEOUT_SECS": "60",
        }
        base.update(dict(env))
        cmd = [sys.executable, str(REPO / "tools" / "codebuild_run.py")]
        cmd += ["--buildspec", buildspec, "--source", str(source), "--project", project]
        cmd += ["--build-id", build_id, "--stand-ins", str(STANDINS)]
        cmd += ["--work", str(work), "--result", str(result), "--account", ACCOUNT]
        cmd += ["--source-version", base["GILD_SOURCE_COMMIT"]]
        if options.get("artifacts", True):
            cmd += [
                "--artifacts",
                f"s3://{BUCKET}/bake",
                "--artifacts-namespace",
                "BUILD_ID",
            ]
        for name, value in base.items():
            cmd += ["--env", f"{name}={value}"]
        log = self.tmp / f"build-{self.builds}.log"
        with open(log, "w", encoding="utf-8") as f:
            proc = subprocess.run(
                cmd, env=self.env, stdout=f, stderr=subprocess.STDOUT, check=False
            )
        data = json.loads(result.read_text()) if result.exists() else {}
        data["log"] = log.read_text(encoding="utf-8")
        data["returncode"] = proc.returncode
        if expect is not None:
            assert data.get("buildStatus") == expect, data["log"][-6000:]
        return data

    def standin_calls(self):
        """What the stand-ins recorded (GILD_STANDIN_LOG), oldest first."""
        path = Path(self.env["GILD_STANDIN_LOG"])
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def instances(self, build_id):
        """Every instance tagged with this build id, and its state."""
        res = self.client("ec2").describe_instances(
            Filters=[{"Name": "tag:gild:build-id", "Values": [build_id]}]
        )["Reservations"]
        return {i["InstanceId"]: i for r in res for i in r["Instances"]}


def start_twin(tmp_path, procs, *proxy_args, source=REPO):
    """moto (with base-amis.json) + the SSM proxy + the stack's resources."""
    moto_exe = os.environ.get("GILD_MOTO_SERVER") or str(
        SHARED_BIN / "gild-moto-server"
    )
    if not Path(moto_exe).exists():
        pytest.fail(f"{moto_exe} is missing: run `make tools`")
    port = free_port()
    env = dict(os.environ, MOTO_AMIS_PATH=str(HERE / "base-amis.json"))
    with open(tmp_path / "moto.log", "w", encoding="utf-8") as moto_log:
        moto = subprocess.Popen(
            [moto_exe, "-H", "127.0.0.1", "-p", str(port)],
            env=env, stdout=moto_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    procs.append(moto)
    wait_http(f"http://127.0.0.1:{port}/moto-api/", moto, "moto")
    port_file = tmp_path / "proxy.port"
    proxy = subprocess.Popen(
        [sys.executable, str(REPO / "tools" / "codebuild_ssm_proxy.py"),
         "--moto", f"http://127.0.0.1:{port}", "--source", str(source),
         "--port-file", str(port_file), *proxy_args],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    procs.append(proxy)
    deadline = time.monotonic() + 20
    while not (port_file.exists() and port_file.read_text()):
        if proxy.poll() is not None or time.monotonic() > deadline:
            pytest.fail("the SSM proxy did not start")
        time.sleep(0.05)
    endpoint = f"http://127.0.0.1:{port_file.read_text()}"
    wait_http(f"{endpoint}/moto-api/", proxy, "the SSM proxy")
    twin = Twin(tmp_path, endpoint, f"http://127.0.0.1:{port}")
    twin.setup_account()
    return twin


def stop(procs):
    """Ends the processes a fixture started, newest first."""
    for proc in reversed(procs):
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def exported(result, name):
    """An exported variable's value, None when not exported at all."""
    for item in result.get("exportedEnvironmentVariables", []):
        if item["name"] == name:
            return item["value"]
    return None


def suites_exported(result):
    """test.yml's GILD_TEST_SUITES, parsed (it must be exported and JSON)."""
    value = exported(result, "GILD_TEST_SUITES")
    assert value, (
        f"GILD_TEST_SUITES not exported: {result.get('exportedEnvironmentVariables')}"
    )
    return json.loads(value)


def baked_image(twin, family):
    """An image as a bake leaves it (the bake itself is test_bake's job)."""
    ec2 = twin.client("ec2", direct=True)
    builder = ec2.run_instances(
        ImageId=BASE_AMI[family], MinCount=1, MaxCount=1, InstanceType="t3.small"
    )["Instances"][0]["InstanceId"]
    image = ec2.create_image(InstanceId=builder, Name=f"gild-{family}-twin")["ImageId"]
    ec2.terminate_instances(InstanceIds=[builder])
    return image


def junit(result):
    """The report group's JUnit file as CodeBuild collected it: (the
    report's entry in the result, the parsed <testsuites> root)."""
    report = result["reports"][REPORT_GROUP]
    (path,) = report["files"]
    return report, ET.parse(path).getroot()


def assert_all_terminated(twin, result):
    """Every instance this build launched is terminated (at least one was)."""
    instances = twin.instances(result["id"])
    assert instances, "the build launched no instance"
    states = {i: v["State"]["Name"] for i, v in instances.items()}
    assert set(states.values()) == {"terminated"}, states
