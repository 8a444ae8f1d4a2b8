# Images as code: the CodeBuild buildspecs.
#
# `make buildspec-check` (part of `make test`) reads every buildspecs/*.yml
# as CodeBuild would: well-formed YAML, `version: 0.2`, `phases` with only
# CodeBuild's phase names, each phase's `commands`/`finally` a list of
# strings that bash can parse (`bash -n`), `on-failure` ABORT or CONTINUE,
# exported variables that are names, and `reports` with a file format.
# The Packer templates themselves are checked by `cargo test` (tests/tests/images.rs).
# PyYAML comes with the tools virtualenv (moto[server] depends on it).

CHECKS += buildspec-check

.PHONY: buildspec-check

define BUILDSPEC_CHECK_PY
import re, subprocess, sys
import yaml

PHASES = {"install", "pre_build", "build", "post_build"}
PHASE_KEYS = {"run-as", "on-failure", "runtime-versions", "commands", "finally"}
TOP_KEYS = {"version", "run-as", "env", "proxy", "batch", "phases", "reports", "artifacts", "cache"}
FORMATS = {"JUNITXML", "CUCUMBERJSON", "TESTNGXML", "VISUALSTUDIOTRX", "NUNITXML", "NUNIT3XML",
           "CLOVERXML", "COBERTURAXML", "JACOCOXML", "SIMPLECOV"}
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$$")

def check(path):
    problems = []
    try:
        with open(path, encoding="utf-8") as f:
            spec = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        return [f"not readable YAML: {err}"]
    if not isinstance(spec, dict):
        return ["not a YAML mapping"]
    if str(spec.get("version")) != "0.2":
        problems.append(f"version must be 0.2, not {spec.get('version')!r}")
    for key in sorted(set(spec) - TOP_KEYS):
        problems.append(f"unknown top-level key {key!r}")
    phases = spec.get("phases")
    if not isinstance(phases, dict) or not phases:
        problems.append("phases must be a non-empty mapping")
        phases = {}
    for name, phase in phases.items():
        if name not in PHASES:
            problems.append(f"unknown phase {name!r}")
            continue
        if not isinstance(phase, dict):
            problems.append(f"phase {name} must be a mapping")
            continue
        for key in sorted(set(phase) - PHASE_KEYS):
            problems.append(f"phase {name}: unknown key {key!r}")
        if "runtime-versions" in phase and name != "install":
            problems.append(f"phase {name}: runtime-versions belongs to install")
        if phase.get("on-failure", "ABORT") not in ("ABORT", "CONTINUE"):
            problems.append(f"phase {name}: on-failure must be ABORT or CONTINUE")
        if not phase.get("commands"):
            problems.append(f"phase {name}: no commands")
        for key in ("commands", "finally"):
            commands = phase.get(key, [])
            if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
                problems.append(f"phase {name}: {key} must be a list of strings")
                continue
            for number, command in enumerate(commands, 1):
                parsed = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
                if parsed.returncode != 0:
                    problems.append(f"phase {name}: {key} #{number} is not valid bash: {parsed.stderr.strip()}")
    env = spec.get("env") or {}
    if not isinstance(env, dict):
        problems.append("env must be a mapping")
        env = {}
    for name in env.get("exported-variables") or []:
        if not isinstance(name, str) or not NAME.match(name):
            problems.append(f"exported variable {name!r} is not a variable name")
    for name, value in (env.get("variables") or {}).items():
        if not isinstance(value, str):
            problems.append(f"env variable {name} must be a quoted string, not {value!r}")
    for group, report in (spec.get("reports") or {}).items():
        if not isinstance(report, dict) or not report.get("files"):
            problems.append(f"report {group}: files are required")
        elif report.get("file-format", "JUNITXML").upper() not in FORMATS:
            problems.append(f"report {group}: unknown file-format {report.get('file-format')!r}")
    return problems

failed = False
paths = sys.argv[1:]
if not paths:
    print("buildspec-check: no buildspecs/*.yml", file=sys.stderr)
    failed = True
for path in paths:
    problems = check(path)
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    failed = failed or bool(problems)
    if not problems:
        print(f"{path}: ok")
sys.exit(1 if failed else 0)
endef
export BUILDSPEC_CHECK_PY

buildspec-check: tools
	$(VENV)/bin/python -c "$$BUILDSPEC_CHECK_PY" $(wildcard buildspecs/*.yml)
