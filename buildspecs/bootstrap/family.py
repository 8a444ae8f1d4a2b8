#!/usr/bin/env python3
"""Reads one family from gild.toml for bake.yml and test.yml, as data.

    family.py check-name NAME        exit 0 if NAME is a valid family name
    family.py read NAME OUT.json [--var-file VARS.json] [--test-script FILE]
                                     validate, then write the family (and
                                     the consumers that use it) as JSON;
                                     --var-file: its `variables` as a
                                     Packer var-file (JSON); --test-script:
                                     its composed test script (below)

Why a script and not inline shell: the buildspecs used to print
`GILD_PATH=<path>` into a file and `source` it, so a catalog path such as
`images/x$(touch /tmp/p)` was executed by the build (issue 11, defect 11).
Nothing here is ever evaluated by a shell: the buildspecs read single
fields of OUT.json with `jq -r`, and the values are validated first so that
they cannot carry `$`, quotes, spaces or newlines even into a careless
script. The rules are the catalog's own (crates/core/src/catalog.rs):
tests/fixtures/family-names.json, family-paths.json and family-graphs.json
hold the cases that the Rust catalog and both buildspecs are tested against
(tests/twin/codebuild/test_family_rules.py, test_family_graphs.py).

Layered families and shared templates (issue 14). A family may name:
- `template`: the Packer template folder (the path rule), default its
  `path`. Its `path` stays the family's own folder (its own tests, any
  per-family file), passed to Packer as the variable `family_dir`;
- `parent`: another family it bakes from (the parent's promoted AMI, which
  the trigger passes as GILD_SOURCE_AMI). The parent must exist and have the
  same `os`; following parents must never lead back to a family (a cycle,
  named from its first-declared member: `a -> c -> b -> a`), and a family
  with its ancestors is at most MAX_DEPTH families;
- `variables`: string values for Packer, keys `^[a-z][a-z0-9_]{0,63}$` and
  none of RESERVED (the names the bake sets itself), values at most 1024
  characters and no control character. They reach Packer only through the
  JSON var-file `--var-file` writes: never through a shell. Packer reads a
  `.json` var-file's strings verbatim (hashicorp/packer v1.16
  hcl2template: `attr.Expr.Value(nil)`; hashicorp/hcl v2.24 json: a nil
  context returns a string as it is, no `${}` template), and a `-var` on the
  command line wins over a var-file (the last assignment, `Variable.Value`),
  so the bake's own `-var`s can never be overridden by the catalog.
`read` checks the family, its chain of parents and the family's own
`template` and `variables`; other families are the Rust catalog's business.

The family's tests (`--test-script`): one script, the composition of the
`tests/run.sh` (linux) or `run.ps1` (windows) files of, in order, every
family of its chain (root first, itself last) that uses the same template
from a folder of its own, then the template's own `tests/<script>`. Each
part that exists is used; at least one must. A family whose `path` is its
template (debian13-base) gets its one script, byte for byte. The parts
before the template's only register checks; the template's script runs
them (images/windows-server/tests/run.ps1 says how). test.yml sends the
composition as the family's suite; tools/codebuild_ssm_proxy.py reads it the
same way (`test_script`).

Consumers (`[consumers.<name>]`: `families`, `tests`, `owner`) are the
applications that rely on a family; test.yml runs each one's tests on the
family's test instance. `read` returns those whose `families` list this
family, each entry held to the Rust catalog's rules (consumer name: the
family-name rule; `families`: a non-empty list of declared families;
`tests`: the path rule; `owner`: 1-100 of A-Z, a-z, 0-9, space and
`._@/-`; no other key). A consumer that names this family and breaks a rule
is refused, and so is one whose `families` cannot be read as a list of
names, since it might name this family; a well-formed consumer of other
families is not this family's business (the Rust catalog refuses it).
"""

import argparse
import json
import re
import sys
import tomllib
import unicodedata
from pathlib import Path

# 1-64 of a-z, 0-9 and `-`, starting with a letter or digit. \Z, not $:
# `$` would also match before a trailing newline. re.ASCII keeps Unicode
# digits out of [0-9]-like classes (none used here, but explicit).
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\Z", re.ASCII)
# One path segment: A-Z, a-z, 0-9, `.`, `_`, `-`; `.` and `..` refused below.
SEGMENT = re.compile(r"[A-Za-z0-9._-]+\Z", re.ASCII)
OSES = ("linux", "windows")
# Who answers for a consumer, named in its failures: 1-100 of these.
OWNER = re.compile(r"[A-Za-z0-9 ._@/-]{1,100}\Z", re.ASCII)
CONSUMER_KEYS = ("families", "tests", "owner")
FAMILY_KEYS = ("path", "template", "parent", "os", "roles", "variables")
# The test script inside a family's tests/ folder or a consumer's `tests`.
SCRIPTS = {"linux": "run.sh", "windows": "run.ps1"}
# A Packer variable a family may set, and the ones the bake sets itself
# (tests/fixtures/family-graphs.json `reserved`; bake.yml passes each).
VARIABLE = re.compile(r"[a-z][a-z0-9_]{0,63}\Z", re.ASCII)
RESERVED = (
    "family",
    "trigger",
    "source_commit",
    "source_ami",
    "parent_family",
    "kms_key_id",
    "subnet_id",
    "security_group_id",
    "winrm_security_group_id",
    "instance_profile",
    "output_dir",
    "region",
    "family_dir",
    "build_id",
)
MAX_VALUE = 1024
# A family and its ancestors: at most this many.
MAX_DEPTH = 5


def valid_name(name):
    """The catalog's family-name rule (catalog.rs `valid_name`)."""
    return bool(NAME.match(name))


def normalise_path(path):
    """The catalog's path rule (catalog.rs `normalise_path`).

    Returns the path without trailing `/`, or None when it is not a relative
    folder of safe segments.
    """
    trimmed = path.rstrip("/")
    if not trimmed or trimmed.startswith("/"):
        return None
    for part in trimmed.split("/"):
        if part in ("", ".", "..") or not SEGMENT.match(part):
            return None
    return trimmed


def valid_owner(owner):
    """The catalog's consumer-owner rule (catalog.rs)."""
    return isinstance(owner, str) and bool(OWNER.match(owner)) and bool(owner.strip())


def consumers_of(name, catalog_data, catalog="gild.toml"):
    """The consumers whose `families` list family `name`, validated, by name."""
    raw = catalog_data.get("consumers", {})
    consumers = raw if isinstance(raw, dict) else None
    if consumers is None:
        raise ValueError(
            f"{catalog}: consumers must be tables, [consumers.<name>], got {raw!r}"
        )
    families = catalog_data.get("families", {})
    os_name = families[name]["os"]
    found = []
    for consumer, raw_entry in consumers.items():
        where = f"consumer {consumer!r}"
        # One we cannot read may name this family: refused too.
        entry = raw_entry if isinstance(raw_entry, dict) else None
        if entry is None:
            raise ValueError(
                f"{where}: must be a [consumers.<name>] table, got {raw_entry!r}"
            )
        raw_listed = entry.get("families")
        listed = raw_listed if isinstance(raw_listed, list) else []
        if not listed or not all(isinstance(f, str) for f in listed):
            raise ValueError(
                f"{where}: families must be a non-empty list of family names, "
                f"got {raw_listed!r}"
            )
        if name not in listed:
            continue
        # This family's consumer from here on: every rule applies.
        if not valid_name(consumer):
            raise ValueError(
                f"bad consumer name {consumer!r}: 1-64 characters of a-z, 0-9 "
                "and `-`, starting with a letter or digit"
            )
        unknown = sorted(set(entry) - set(CONSUMER_KEYS))
        if unknown:
            raise ValueError(
                f"{where}: unknown keys {unknown!r} (a consumer has "
                f"{', '.join(CONSUMER_KEYS)})"
            )
        undeclared = [f for f in listed if f not in families]
        if undeclared:
            raise ValueError(f"{where}: families {undeclared!r} are not in {catalog}")
        twice = sorted({f for f in listed if listed.count(f) > 1})
        if twice:
            raise ValueError(f"{where}: families {twice!r} are listed twice")
        raw_tests = entry.get("tests")
        tests = normalise_path(raw_tests) if isinstance(raw_tests, str) else None
        if tests is None:
            raise ValueError(
                f"{where}: tests {raw_tests!r} must be a relative folder of "
                "segments of A-Z, a-z, 0-9, `.`, `_` and `-` (no `..`, no leading `/`)"
            )
        owner = entry.get("owner")
        if not valid_owner(owner):
            raise ValueError(
                f"{where}: owner {owner!r} must be 1-100 characters of A-Z, a-z, "
                "0-9, space, `.`, `_`, `@`, `/` and `-`"
            )
        found.append(
            {
                "name": consumer,
                "owner": owner,
                "test_script": f"{tests}/{SCRIPTS[os_name]}",
            }
        )
    return sorted(found, key=lambda c: c["name"])


def family_path(name, entry, key, default=None):
    """A family's `path` or `template`, normalised, or a ValueError."""
    raw = entry.get(key, default)
    path = normalise_path(raw) if isinstance(raw, str) else None
    if path is None:
        raise ValueError(
            f"family {name!r}: {key} {raw!r} must be a relative folder of "
            "segments of A-Z, a-z, 0-9, `.`, `_` and `-` (no `..`, no leading `/`)"
        )
    return path


def variables_of(name, entry):
    """A family's `variables`, held to the rules (module docstring)."""
    raw = entry.get("variables", {})
    table = raw if isinstance(raw, dict) else None
    if table is None:
        raise ValueError(
            f"family {name!r}: variables must be a table "
            f"([families.{name}.variables]), got {raw!r}"
        )
    found = {}
    for key, raw_value in table.items():
        if not VARIABLE.match(key):
            raise ValueError(
                f"family {name!r}: variable name {key!r} must be 1-64 of a-z, 0-9 "
                "and `_`, starting with a letter (a Packer variable name)"
            )
        if key in RESERVED:
            raise ValueError(
                f"family {name!r}: variable `{key}` is reserved: the bake sets it "
                f"itself (reserved: {', '.join(RESERVED)})"
            )
        value = raw_value if isinstance(raw_value, str) else None
        if value is None:
            raise ValueError(
                f"family {name!r}: variable `{key}` must be a string, not {raw_value!r}"
            )
        if len(value) > MAX_VALUE:
            raise ValueError(
                f"family {name!r}: variable `{key}` is {len(value)} characters "
                f"long (at most {MAX_VALUE})"
            )
        if any(unicodedata.category(c) == "Cc" for c in value):
            raise ValueError(
                f"family {name!r}: variable `{key}` holds a control character "
                "(newline, tab, ...)"
            )
        found[key] = value
    return found


def chain_of(name, families):
    """The family and its ancestors, itself first, held to the graph rules:
    every parent exists and has the family's os, no cycle, at most
    MAX_DEPTH families."""
    order = list(families)
    chain = [name]
    while True:
        current = chain[-1]
        entry = families[current] if isinstance(families[current], dict) else None
        if entry is None:
            raise ValueError(f"family {current!r}: must be a [families.<name>] table")
        if "parent" not in entry:
            break
        parent = entry["parent"]
        if not isinstance(parent, str) or not valid_name(parent):
            raise ValueError(
                f"family {current!r}: parent {parent!r} is not a family name "
                "(1-64 characters of a-z, 0-9 and `-`)"
            )
        if parent not in families:
            raise ValueError(
                f"family {current!r}: parent `{parent}` is not a family in gild.toml"
            )
        if parent in chain:
            cycle = chain[chain.index(parent) :]
            # Named from the member declared first, whichever is read.
            first = min(cycle, key=order.index)
            at = cycle.index(first)
            loop = cycle[at:] + cycle[:at] + [first]
            raise ValueError(
                f"family {name!r}: its chain of parents has a cycle: {' -> '.join(loop)}"
            )
        own_os = entry.get("os")
        parent_entry = families[parent]
        parent_os = parent_entry.get("os") if isinstance(parent_entry, dict) else None
        if own_os != parent_os:
            raise ValueError(
                f"family {current!r} is os {own_os}, but its parent `{parent}` is "
                f"{parent_os}: a family bakes from its parent's image"
            )
        chain.append(parent)
    # Walked to the root first, so that a cycle is named as one.
    if len(chain) > MAX_DEPTH:
        raise ValueError(
            f"family {name!r}: its chain of parents is deeper than {MAX_DEPTH} "
            f"families ({' -> '.join(chain)})"
        )
    return chain


def test_parts(name, families, os_name, root):
    """The files the family's test script is made of (module docstring),
    repository-relative, in order."""
    template = families[name]["template"]
    script = SCRIPTS[os_name]
    parts = []
    for member in reversed(families[name]["chain"]):
        entry = families[member]
        if entry["template"] == template and entry["path"] != template:
            parts.append(f"{entry['path']}/tests/{script}")
    parts.append(f"{template}/tests/{script}")
    return [p for p in parts if (Path(root) / p).is_file()]


def compose(parts, root):
    """The family's one test script: its parts, each headed by a comment
    naming it, or the one part as it is."""
    if len(parts) == 1:
        return (Path(root) / parts[0]).read_bytes()
    out = b""
    for part in parts:
        text = (Path(root) / part).read_bytes()
        if not text.endswith(b"\n"):
            text += b"\n"
        out += f"# ----- gild: {part} -----\n".encode() + text
    return out


def read(name, catalog="gild.toml"):
    """The family as the buildspecs use it, from the catalog, validated:
    name, path, template, os, parent and its chain, variables, the parts of
    its test script, and its consumers."""
    if not valid_name(name):
        raise ValueError(
            f"bad family name {name!r}: 1-64 characters of a-z, 0-9 and `-`, "
            "starting with a letter or digit"
        )
    with open(catalog, "rb") as f:
        data = tomllib.load(f)
    families = data.get("families", {})
    if not isinstance(families, dict) or name not in families:
        raise ValueError(f"family {name!r} is not in {catalog}")
    family = families[name] if isinstance(families[name], dict) else None
    if family is None:
        raise ValueError(f"family {name!r}: must be a [families.<name>] table")
    unknown = sorted(set(family) - set(FAMILY_KEYS))
    if unknown:
        raise ValueError(
            f"family {name!r}: unknown keys {unknown!r} (a family has "
            f"{', '.join(FAMILY_KEYS)})"
        )
    path = family_path(name, family, "path")
    template = family_path(name, family, "template", default=family.get("path"))
    os_name = family.get("os")
    if os_name not in OSES:
        raise ValueError(f"family {name!r}: os {os_name!r} is not linux or windows")
    variables = variables_of(name, family)
    chain = chain_of(name, families)
    # The chain's folders, for the test script's parts (their own rules
    # checked as the family's: a bad path in an ancestor is refused too).
    resolved = {}
    for member in chain:
        entry = families[member]
        member_path = family_path(member, entry, "path")
        resolved[member] = {
            "path": member_path,
            "template": family_path(member, entry, "template", default=member_path),
            "chain": chain[chain.index(member) :],
        }
    root = Path(catalog).parent
    return {
        "name": name,
        "path": path,
        "template": template,
        "os": os_name,
        "parent": chain[1] if len(chain) > 1 else None,
        "ancestors": chain[1:],
        "variables": variables,
        "test_scripts": test_parts(name, resolved, os_name, root),
        "consumers": consumers_of(name, data, catalog),
    }


def test_script(name, catalog="gild.toml"):
    """The family's composed test script (bytes); a ValueError when it has
    none."""
    family = read(name, catalog)
    if not family["test_scripts"]:
        script = SCRIPTS[family["os"]]
        raise ValueError(
            f"family {name!r}: no test script: neither {family['path']}/tests/{script} "
            f"nor {family['template']}/tests/{script} exists"
        )
    return compose(family["test_scripts"], Path(catalog).parent)


def main(argv):
    """CLI entry point; prints the problem and exits 1 on any refusal."""
    parser = argparse.ArgumentParser(prog="family.py", add_help=False)
    parser.add_argument("command", choices=("check-name", "read"))
    parser.add_argument("name")
    parser.add_argument("out", nargs="?")
    parser.add_argument("--var-file")
    parser.add_argument("--test-script")
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        if args.command == "check-name" and args.out is None:
            if not valid_name(args.name):
                read(args.name)  # raises with the rule in its message
            return 0
        if args.command == "read" and args.out is not None:
            family = read(args.name)
            if args.test_script:
                # Written only when the family has one; the buildspec says
                # which are missing (and still runs the consumers').
                script = Path(args.test_script)
                script.unlink(missing_ok=True)
                if family["test_scripts"]:
                    script.parent.mkdir(parents=True, exist_ok=True)
                    script.write_bytes(compose(family["test_scripts"], Path(".")))
                family["test_script"] = str(script)
            if args.var_file:
                with open(args.var_file, "w", encoding="utf-8") as f:
                    json.dump(family["variables"], f, indent=2, sort_keys=True)
            with open(args.out, "w", encoding="utf-8") as f:
                json.dump(family, f)
            return 0
    except (OSError, ValueError, tomllib.TOMLDecodeError) as err:
        print(f"gild: {err}", file=sys.stderr)
        return 1
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
