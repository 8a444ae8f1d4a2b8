#!/usr/bin/env python3
"""Reads one family from gild.toml for bake.yml and test.yml, as data.

    family.py check-name NAME        exit 0 if NAME is a valid family name
    family.py read NAME OUT.json     validate, then write the family as JSON

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


def read(name, catalog="gild.toml"):
    """The family's path and os from the catalog, validated."""
    if not valid_name(name):
        raise ValueError(
            f"bad family name {name!r}: 1-64 characters of a-z, 0-9 and `-`, "
            "starting with a letter or digit"
        )
    with open(catalog, "rb") as f:
        families = tomllib.load(f).get("families", {})
    if name not in families:
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
    script = "run.sh" if os_name == "linux" else "run.ps1"
    return {
        "name": name,
        "path": path,
        "os": os_name,
        "test_script": f"{path}/tests/{script}",
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
