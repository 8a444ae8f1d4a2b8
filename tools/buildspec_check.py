#!/usr/bin/env python3
"""Reads buildspecs as CodeBuild would, before anything runs them.

    buildspec_check.py buildspecs/*.yml

Why: a buildspec error only shows in CodeBuild, minutes into a build. This
checks what CodeBuild checks when it parses the file (keys and values as
the buildspec reference defines them: docs.aws.amazon.com/codebuild/latest/
userguide/build-spec-ref.html; archived copy github.com/awsdocs/
aws-codebuild-user-guide@66cc3be doc_source/build-spec-ref.md) and one
thing it does not: every command is valid bash (`bash -n`), since env.shell
is bash. Whether the commands do the right thing is tests/twin/codebuild/'s
job, which runs them (tools/codebuild_run.py).
"""

import re
import subprocess
import sys

import yaml

PHASES = {"install", "pre_build", "build", "post_build"}
PHASE_KEYS = {"run-as", "on-failure", "runtime-versions", "commands", "finally"}
TOP_KEYS = {
    "version", "run-as", "env", "proxy", "batch", "phases", "reports", "artifacts", "cache",
}  # fmt: skip
ENV_KEYS = {
    "shell", "variables", "parameter-store", "exported-variables", "secrets-manager",
    "git-credential-helper",
}  # fmt: skip
SHELLS = {"bash", "/bin/sh", "powershell.exe", "cmd.exe"}
FORMATS = {
    "JUNITXML", "CUCUMBERJSON", "TESTNGXML", "VISUALSTUDIOTRX", "NUNITXML", "NUNIT3XML",
    "CLOVERXML", "COBERTURAXML", "JACOCOXML", "SIMPLECOV",
}  # fmt: skip
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def bash_problems(where, commands):
    """Each command must be a string that bash can parse."""
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        return [f"{where} must be a list of strings"]
    problems = []
    for number, command in enumerate(commands, 1):
        parsed = subprocess.run(
            ["bash", "-n", "-c", command], capture_output=True, text=True, check=False
        )
        if parsed.returncode != 0:
            problems.append(
                f"{where} #{number} is not valid bash: {parsed.stderr.strip()}"
            )
    return problems


def phase_problems(name, phase):
    """One phase: known keys, on-failure, commands."""
    if name not in PHASES:
        return [f"unknown phase {name!r}"]
    if not isinstance(phase, dict):
        return [f"phase {name} must be a mapping"]
    problems = [
        f"phase {name}: unknown key {k!r}" for k in sorted(set(phase) - PHASE_KEYS)
    ]
    if "runtime-versions" in phase and name != "install":
        problems.append(f"phase {name}: runtime-versions belongs to install")
    if phase.get("on-failure", "ABORT") not in ("ABORT", "CONTINUE"):
        problems.append(f"phase {name}: on-failure must be ABORT or CONTINUE")
    if not phase.get("commands"):
        problems.append(f"phase {name}: no commands")
    for key in ("commands", "finally"):
        if key in phase:
            problems += bash_problems(f"phase {name}: {key}", phase[key])
    return problems


def env_problems(env):
    """env: known keys, a known shell, names and string values."""
    if not isinstance(env, dict):
        return ["env must be a mapping"]
    problems = [f"env: unknown key {k!r}" for k in sorted(set(env) - ENV_KEYS)]
    if "shell" in env and env["shell"] not in SHELLS:
        problems.append(f"env.shell {env['shell']!r} is not one of {sorted(SHELLS)}")
    for name in env.get("exported-variables") or []:
        if not isinstance(name, str) or not NAME.match(name):
            problems.append(f"exported variable {name!r} is not a variable name")
        elif name.startswith("AWS_"):
            problems.append(
                f"exported variable {name}: names starting AWS_ cannot be exported"
            )
    for name, value in (env.get("variables") or {}).items():
        if not isinstance(value, str):
            problems.append(
                f"env variable {name} must be a quoted string, not {value!r}"
            )
        if str(name).startswith("CODEBUILD_"):
            problems.append(f"env variable {name}: the CODEBUILD_ prefix is reserved")
    return problems


def output_problems(spec):
    """reports and artifacts: files, formats, discard-paths."""
    problems = []
    for group, report in (spec.get("reports") or {}).items():
        if not isinstance(report, dict) or not report.get("files"):
            problems.append(f"report {group}: files are required")
        elif str(report.get("file-format", "JUNITXML")).upper() not in FORMATS:
            problems.append(
                f"report {group}: unknown file-format {report.get('file-format')!r}"
            )
    artifacts = spec.get("artifacts")
    if artifacts is not None:
        files = artifacts.get("files") if isinstance(artifacts, dict) else None
        if (
            not isinstance(files, list)
            or not files
            or not all(isinstance(f, str) for f in files)
        ):
            problems.append("artifacts.files must be a non-empty list of paths")
        elif str(artifacts.get("discard-paths", "no")).lower() not in (
            "yes",
            "no",
            "true",
            "false",
        ):
            problems.append("artifacts.discard-paths must be yes or no")
    return problems


def check(path):
    """Every problem CodeBuild (or bash) would have with this file."""
    try:
        with open(path, encoding="utf-8") as f:
            spec = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        return [f"not readable YAML: {err}"]
    if not isinstance(spec, dict):
        return ["not a YAML mapping"]
    problems = []
    if str(spec.get("version")) != "0.2":
        problems.append(f"version must be 0.2, not {spec.get('version')!r}")
    problems += [f"unknown top-level key {k!r}" for k in sorted(set(spec) - TOP_KEYS)]
    phases = spec.get("phases")
    if not isinstance(phases, dict) or not phases:
        problems.append("phases must be a non-empty mapping")
        phases = {}
    for name, phase in phases.items():
        problems += phase_problems(name, phase)
    problems += env_problems(spec.get("env") or {})
    problems += output_problems(spec)
    return problems


def main(paths):
    """Prints `path: ok` or each problem; exit 1 on any."""
    if not paths:
        print("buildspec-check: no buildspecs given", file=sys.stderr)
        return 1
    failed = False
    for path in paths:
        problems = check(path)
        for problem in problems:
            print(f"{path}: {problem}", file=sys.stderr)
        if not problems:
            print(f"{path}: ok")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
