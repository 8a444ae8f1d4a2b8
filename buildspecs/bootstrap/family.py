#!/usr/bin/env python3
"""Reads one family from gild.toml for bake.yml and test.yml, as data.

    family.py check-name NAME        exit 0 if NAME is a valid family name
    family.py read NAME OUT.json     validate, then write the family (and
                                     the consumers that use it) as JSON

Why a script and not inline shell: the buildspecs used to print
`GILD_PATH=<path>` into a file and `source` it, so a catalog path such as
`images/x$(touch /tmp/p)` was executed by the build (issue 11, defect 11).
Nothing here is ever evaluated by a shell: the buildspecs read single
fields of OUT.json with `jq -r`, and the values are validated first so that
they cannot carry `$`, quotes, spaces or newlines even into a careless
script. The two rules are the catalog's own (crates/core/src/catalog.rs,
`valid_name` and `normalise_path`); tests/fixtures/family-names.json and
family-paths.json hold the cases that the Rust catalog and both buildspecs
are tested against (tests/twin/codebuild/test_family_rules.py).

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

import json
import re
import sys
import tomllib

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
# The test script inside a family's tests/ folder or a consumer's `tests`.
SCRIPTS = {"linux": "run.sh", "windows": "run.ps1"}


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


def read(name, catalog="gild.toml"):
    """The family's path and os, and its consumers, from the catalog, validated."""
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
    family = families[name]
    raw_path = family.get("path")
    path = normalise_path(raw_path) if isinstance(raw_path, str) else None
    if path is None:
        raise ValueError(
            f"family {name!r}: path {raw_path!r} must be a relative folder of "
            "segments of A-Z, a-z, 0-9, `.`, `_` and `-` (no `..`, no leading `/`)"
        )
    os_name = family.get("os")
    if os_name not in OSES:
        raise ValueError(f"family {name!r}: os {os_name!r} is not linux or windows")
    return {
        "name": name,
        "path": path,
        "os": os_name,
        "test_script": f"{path}/tests/{SCRIPTS[os_name]}",
        "consumers": consumers_of(name, data, catalog),
    }


def main(argv):
    """CLI entry point; prints the problem and exits 1 on any refusal."""
    try:
        if len(argv) == 2 and argv[0] == "check-name":
            if not valid_name(argv[1]):
                read(argv[1])  # raises with the rule in its message
            return 0
        if len(argv) == 3 and argv[0] == "read":
            family = read(argv[1])
            with open(argv[2], "w", encoding="utf-8") as f:
                json.dump(family, f)
            return 0
    except (OSError, ValueError, tomllib.TOMLDecodeError) as err:
        print(f"gild: {err}", file=sys.stderr)
        return 1
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
