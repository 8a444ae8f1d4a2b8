#!/usr/bin/env python3
"""Runs a CodeBuild buildspec (version 0.2, Linux, bash) locally, as CodeBuild would.

    codebuild_run.py --buildspec buildspecs/bake.yml --source . \\
        --project gild-bake --build-id gild-bake:<uuid> \\
        --env GILD_FAMILY=debian13-base ... \\
        [--artifacts s3://bucket/path] [--stand-ins DIR] --result out.json

Why: moto records StartBuild but runs nothing, so until now no test ran the
buildspecs (issue 11, twin item c). This runner follows the CodeBuild user
guide (archived copy: github.com/awsdocs/aws-codebuild-user-guide at
66cc3be, doc_source/build-spec-ref.md, view-build-details.md#phases,
build-env-ref-env-vars.md; current pages under
docs.aws.amazon.com/codebuild/latest/userguide/):

- DOWNLOAD_SOURCE: --source is copied into a fresh CODEBUILD_SRC_DIR (no
  .git, target/ or .venv), as CodeBuild downloads a clean copy;
- phases install, pre_build, build, post_build in that order; each command
  is its own bash process, but exported variables and the working directory
  carry over to the next command and phase (version 0.2). Shell options and
  unexported variables do not (the runner's reading; bake.yml and test.yml
  rely on neither);
- a failing command skips the rest of its phase's `commands`; `finally` runs
  anyway; the phase fails if any command did. Then `on-failure: CONTINUE`
  goes on to the next phase, `ABORT` ends the build; with no `on-failure`
  a failed install or pre_build ends the build (post_build does not run) and
  a failed build still runs post_build ("Build phase transitions");
- UPLOAD_ARTIFACTS is attempted when post_build was reached (also after a
  failed build); no file matching `artifacts.files` fails it, as CodeBuild's
  "no matching artifact paths found" does;
- env: the caller's environment (AWS_* credentials and AWS_ENDPOINT_URL pass
  through), then buildspec `env.variables` (lowest precedence), then --env
  (the StartBuild override, highest), then the variables CodeBuild sets;
  CODEBUILD_BUILD_SUCCEEDING turns 0 after the first failure;
- `exported-variables` are read when the build ends (after post_build, or
  where it was aborted); a listed variable that is unset is reported with
  an empty value; names starting with AWS_ cannot be exported;
- reports: each group's files (base-directory, globs) are collected and
  their JUnit test cases read into the result, as DescribeTestCases lists them.

What this is not: no container image, no runtime-versions switching, no
parameter-store/secrets-manager, no CloudWatch Logs, no timeouts.

The result (--result) uses BatchGetBuilds' field names: buildStatus,
phases[].phaseType/phaseStatus, exportedEnvironmentVariables[].name/value,
reportArns, artifacts.location, plus `reports` (group -> files, testCases)
and `artifactObjects` (the S3 keys uploaded).
"""

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

PHASES = ("install", "pre_build", "build", "post_build")
# Left out of the fresh source copy: git metadata and build outputs.
IGNORED = (".git", "target", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache")
# Variables bash itself sets; not carried from one command to the next.
SHELL_OWN = {"_", "SHLVL", "PWD", "OLDPWD"}
# Runs one command in bash with the state of the previous one. The trap
# records exported variables and the directory even when the command calls
# `exit`, which in CodeBuild fails that command only.
WRAPPER = 'trap \'rc=$?; env -0 > "$1"; pwd > "$2"; exit $rc\' EXIT\n. "$3"\n'


def parse_args(argv):
    """Command line, named as the brief and CodeBuild name things."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--buildspec", required=True, help="path relative to --source, or absolute"
    )
    p.add_argument(
        "--source", required=True, help="source folder (copied, as DOWNLOAD_SOURCE)"
    )
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--project", required=True)
    p.add_argument("--build-id", help="PROJECT:UUID or UUID (default: a new UUID)")
    p.add_argument("--build-number", default="1")
    p.add_argument(
        "--account", default=os.environ.get("GILD_ACCOUNT_ID", "123456789012")
    )
    p.add_argument("--region", default=os.environ.get("AWS_REGION") or "us-east-1")
    p.add_argument("--initiator", default="gild")
    p.add_argument(
        "--source-version", help="CODEBUILD_RESOLVED_SOURCE_VERSION (default: git HEAD)"
    )
    p.add_argument(
        "--artifacts", help="s3://bucket[/path]: the project's S3 artifact location"
    )
    p.add_argument(
        "--artifacts-namespace", choices=("NONE", "BUILD_ID"), default="NONE"
    )
    p.add_argument(
        "--artifacts-name", help="the project's artifact name (default: project)"
    )
    p.add_argument(
        "--override-artifact-name",
        action="store_true",
        help="use the buildspec's artifacts.name (ProjectArtifacts.overrideArtifactName)",
    )
    p.add_argument(
        "--stand-ins",
        help="DIR: DIR/bin goes first on PATH; DIR/bootstrap/* replace the copy's "
        "buildspecs/bootstrap/ files of the same name",
    )
    p.add_argument(
        "--work", help="folder for the source copy (default: a new temp dir)"
    )
    p.add_argument("--result", required=True, help="where the JSON result goes")
    return p.parse_args(argv)


def log(message):
    """CodeBuild-like log lines on stderr, so stdout stays the build's."""
    print(f"[codebuild_run] {message}", file=sys.stderr, flush=True)


def download_source(source, work, stand_ins):
    """DOWNLOAD_SOURCE: a clean copy, with the stand-in overlays applied."""
    src_dir = Path(work) / "src"
    shutil.copytree(
        source, src_dir, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True
    )
    if stand_ins:
        overlay = Path(stand_ins) / "bootstrap"
        for path in sorted(overlay.glob("*")) if overlay.is_dir() else []:
            target = src_dir / "buildspecs" / "bootstrap" / path.name
            if not target.exists():
                raise SystemExit(f"stand-in {path} replaces nothing: no {target}")
            shutil.copy2(path, target)
            log(f"stand-in: buildspecs/bootstrap/{path.name} replaced by {path}")
    return src_dir


def resolved_version(source, given):
    """The commit, as CodeBuild reports it for CodeCommit sources."""
    if given:
        return given
    try:
        out = subprocess.run(
            ["git", "-C", source, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def build_environment(args, spec, src_dir, build_id):
    """The environment of the first command, in CodeBuild's precedence order."""
    env = dict(os.environ)
    if args.stand_ins:
        env["PATH"] = (
            f"{Path(args.stand_ins, 'bin').resolve()}{os.pathsep}{env.get('PATH', '')}"
        )
    for name, value in ((spec.get("env") or {}).get("variables") or {}).items():
        env[str(name)] = "" if value is None else str(value)
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--env wants NAME=VALUE, not {item!r}")
        env[name] = value
    env.update(
        {
            "CODEBUILD_BUILD_ID": build_id,
            "CODEBUILD_BUILD_ARN": f"arn:aws:codebuild:{args.region}:{args.account}:build/{build_id}",
            "CODEBUILD_BUILD_NUMBER": args.build_number,
            "CODEBUILD_BUILD_IMAGE": "aws/codebuild/standard:7.0",
            "CODEBUILD_BUILD_SUCCEEDING": "1",
            "CODEBUILD_INITIATOR": args.initiator,
            "CODEBUILD_SRC_DIR": str(src_dir),
            "CODEBUILD_START_TIME": str(int(time.time() * 1000)),
            "CODEBUILD_RESOLVED_SOURCE_VERSION": resolved_version(
                args.source, args.source_version
            ),
            "CODEBUILD_SOURCE_VERSION": resolved_version(
                args.source, args.source_version
            ),
            "AWS_REGION": args.region,
            "AWS_DEFAULT_REGION": args.region,
        }
    )
    return env


class Shell:
    """One build's shell session: env and cwd carried between commands."""

    def __init__(self, env, cwd, scratch):
        self.env = env
        self.cwd = str(cwd)
        self.scratch = Path(scratch)
        self.count = 0

    def run(self, command):
        """Runs one buildspec command; returns its exit code."""
        self.count += 1
        step = self.scratch / f"cmd-{self.count:03d}"
        script, env_out, cwd_out = (
            step.with_suffix(".sh"),
            step.with_suffix(".env"),
            step.with_suffix(".cwd"),
        )
        script.write_text(command, encoding="utf-8")
        print(
            f"[Container] Running command {command.strip().splitlines()[0] if command.strip() else ''}",
            flush=True,
        )
        rc = subprocess.run(
            [
                "bash",
                "-c",
                WRAPPER,
                "codebuild",
                str(env_out),
                str(cwd_out),
                str(script),
            ],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            check=False,
        ).returncode
        if env_out.exists():
            pairs = env_out.read_bytes().decode("utf-8", "surrogateescape").split("\0")
            self.env = {
                k: v
                for k, _, v in (p.partition("=") for p in pairs if "=" in p)
                if k not in SHELL_OWN
            }
        if cwd_out.exists() and cwd_out.read_text().strip():
            self.cwd = cwd_out.read_text().rstrip("\n")
        if rc != 0:
            print(
                f"[Container] Command did not exit successfully {command.strip()[:60]!r} exit status {rc}",
                flush=True,
            )
        return rc


def run_block(shell, commands):
    """Runs commands until one fails; True when all succeeded."""
    for command in commands or []:
        if shell.run(str(command)) != 0:
            shell.env["CODEBUILD_BUILD_SUCCEEDING"] = "0"
            return False
    return True


def run_phases(spec, shell):
    """The phase transitions; returns (phases, whether the build ran to its end)."""
    phases = []
    phase_specs = spec.get("phases") or {}
    aborted = False
    for name in PHASES:
        phase = phase_specs.get(name)
        if aborted:
            break
        if phase is None:
            continue
        print(f"[Container] Entering phase {name.upper()}", flush=True)
        ok = run_block(shell, phase.get("commands"))
        ok = run_block(shell, phase.get("finally")) and ok
        status = "SUCCEEDED" if ok else "FAILED"
        phases.append({"phaseType": name.upper(), "phaseStatus": status})
        print(f"[Container] Phase complete: {name.upper()} State: {status}", flush=True)
        if ok:
            continue
        on_failure = phase.get("on-failure")
        if on_failure == "CONTINUE":
            continue
        if on_failure == "ABORT" or name in ("install", "pre_build"):
            aborted = True
        # No on-failure after a failed build: post_build still runs.
    return phases, not aborted


def expand(text, env):
    """Shell expansion of a buildspec name (artifact name, report group)."""
    out = subprocess.run(
        ["bash", "-c", 'eval "printf %s \\"$1\\""', "expand", text],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout if out.returncode == 0 else text


def matching_files(base, patterns):
    """Files under base matching CodeBuild's path globs (`**/*` recursive)."""
    found = []
    for path in sorted(p for p in Path(base).rglob("*") if p.is_file()):
        rel = path.relative_to(base).as_posix()
        for pattern in map(str, patterns):
            pattern = pattern.removeprefix("./")
            recursive = pattern == "**/*" or (
                pattern.endswith("/**/*") and rel.startswith(pattern[:-4])
            )
            if recursive or fnmatch.fnmatchcase(rel, pattern):
                found.append(rel)
                break
    return found


def upload_artifacts(spec, args, shell, build_id):
    """UPLOAD_ARTIFACTS to the project's S3 location with the real CLI."""
    artifacts = spec.get("artifacts")
    if not artifacts or not args.artifacts:
        return "SUCCEEDED", [], None
    src_dir = Path(shell.env["CODEBUILD_SRC_DIR"])
    base = src_dir / expand(str(artifacts.get("base-directory", ".")), shell.env)
    files = matching_files(base, artifacts.get("files") or []) if base.is_dir() else []
    if not files:
        log("UPLOAD_ARTIFACTS: CLIENT_ERROR: no matching artifact paths found")
        return "FAILED", [], None
    name = args.artifacts_name or args.project
    if args.override_artifact_name and artifacts.get("name"):
        name = expand(str(artifacts["name"]), shell.env)
    location = args.artifacts.rstrip("/")
    if args.artifacts_namespace == "BUILD_ID":
        location += "/" + build_id.split(":", 1)[-1]
    # A name of "/" stores the files at the location itself (API reference,
    # ProjectArtifacts.name: path MyArtifacts, BUILD_ID and name "/" give
    # MyArtifacts/<build-ID>).
    if name.strip("/"):
        location += "/" + name.strip("/")
    discard = str(artifacts.get("discard-paths", "no")).lower() in ("yes", "true")
    uploaded = []
    for rel in files:
        key = Path(rel).name if discard else rel
        target = f"{location}/{key}"
        cp = subprocess.run(
            ["aws", "s3", "cp", "--only-show-errors", str(base / rel), target],
            env=shell.env,
            check=False,
        )
        if cp.returncode != 0:
            return "FAILED", uploaded, location
        uploaded.append(target)
    return "SUCCEEDED", uploaded, location


def junit_cases(path):
    """Test cases of a JUnit XML file, as CodeBuild's DescribeTestCases names them."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        status, message = "SUCCEEDED", None
        for tag, value in (
            ("failure", "FAILED"),
            ("error", "ERROR"),
            ("skipped", "SKIPPED"),
        ):
            child = case.find(tag)
            if child is not None:
                status, message = value, child.get("message") or (child.text or "")
                break
        cases.append(
            {
                "prefix": case.get("classname", ""),
                "name": case.get("name", ""),
                "status": status,
                "message": message,
            }
        )
    return cases


def collect_reports(spec, shell):
    """Each report group's files and test cases (JUNITXML only)."""
    reports = {}
    src_dir = Path(shell.env["CODEBUILD_SRC_DIR"])
    for group, report in (spec.get("reports") or {}).items():
        name = expand(str(group), shell.env)
        base = src_dir / str(report.get("base-directory", "."))
        files = matching_files(base, report.get("files") or []) if base.is_dir() else []
        entry = {
            "fileFormat": report.get("file-format", "JUNITXML"),
            "files": [],
            "testCases": [],
        }
        for rel in files:
            entry["files"].append(str(base / rel))
            if entry["fileFormat"].upper() == "JUNITXML":
                try:
                    entry["testCases"].extend(junit_cases(base / rel))
                except ET.ParseError as err:
                    entry["error"] = f"{rel}: {err}"
        reports[name] = entry
    return reports


def exported(spec, env):
    """exported-variables as BatchGetBuilds reports them at the build's end."""
    names = (spec.get("env") or {}).get("exported-variables") or []
    return [
        {"name": n, "value": env.get(n, "")}
        for n in names
        if not str(n).startswith("AWS_")
    ]


def main(argv):
    """Runs the build and writes the result; exit 0 when it SUCCEEDED."""
    args = parse_args(argv)
    build_uuid = str(uuid.uuid4())
    build_id = args.build_id or f"{args.project}:{build_uuid}"
    if ":" not in build_id:
        build_id = f"{args.project}:{build_id}"
    work = Path(args.work or tempfile.mkdtemp(prefix="codebuild-"))
    work.mkdir(parents=True, exist_ok=True)
    src_dir = download_source(args.source, work, args.stand_ins)
    spec_path = Path(args.buildspec)
    spec_path = spec_path if spec_path.is_absolute() else src_dir / spec_path
    with open(spec_path, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    if str(spec.get("version")) != "0.2":
        raise SystemExit(f"{spec_path}: only buildspec version 0.2 is run")
    shell_name = (spec.get("env") or {}).get("shell", "bash")
    if shell_name != "bash":
        raise SystemExit(f"{spec_path}: env.shell {shell_name!r}: only bash is run")
    scratch = work / "shell"
    scratch.mkdir(exist_ok=True)
    shell = Shell(build_environment(args, spec, src_dir, build_id), src_dir, scratch)
    phases, ran_to_end = run_phases(spec, shell)
    failed = any(p["phaseStatus"] != "SUCCEEDED" for p in phases)
    uploaded, location = [], None
    if ran_to_end and spec.get("artifacts") and args.artifacts:
        status, uploaded, location = upload_artifacts(spec, args, shell, build_id)
        phases.append({"phaseType": "UPLOAD_ARTIFACTS", "phaseStatus": status})
        failed = failed or status != "SUCCEEDED"
    reports = collect_reports(spec, shell)
    result = {
        "id": build_id,
        "arn": shell.env["CODEBUILD_BUILD_ARN"],
        "projectName": args.project,
        "buildStatus": "FAILED" if failed else "SUCCEEDED",
        "phases": phases,
        "exportedEnvironmentVariables": exported(spec, shell.env),
        "reportArns": sorted(reports),
        "reports": reports,
        "artifacts": {"location": location} if location else {},
        "artifactObjects": uploaded,
        "sourceDirectory": str(src_dir),
        "resolvedSourceVersion": shell.env.get("CODEBUILD_RESOLVED_SOURCE_VERSION", ""),
    }
    Path(args.result).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log(f"{build_id}: {result['buildStatus']}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
