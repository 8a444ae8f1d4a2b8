#!/usr/bin/env python3
"""Zipped size of each function `sam build` produced, and a glibc check.

Usage: bootstrap_sizes.py BUILD_DIR [OUT_FILE]

For every BUILD_DIR/<Function>/bootstrap: zip it (deflate, level 9, as the
deployment package Lambda receives) and print the zip's size in KB. Also
checks the highest GLIBC_x.y symbol version the binary needs against what the
provided.al2023 runtime has (glibc 2.34): a binary linked on a newer host can
need symbols Lambda does not have, and would only fail once deployed.
Exits non-zero if a function is missing or needs a newer glibc.
"""

import io
import re
import sys
import zipfile
from pathlib import Path

# provided.al2023 ships glibc 2.34.
RUNTIME_GLIBC = (2, 34)
# sam build builds every AWS::Serverless::Function, whatever its Condition.
TEMPLATE = Path(__file__).resolve().parent / "template.yaml"


def functions(template: Path = TEMPLATE) -> list:
    """The logical ids of the template's AWS::Serverless::Function resources,
    read from its text: a resource is a two-space-indented key under
    Resources whose next `Type:` line names the type."""
    found, current, in_resources = [], None, False
    for line in template.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\S", line):
            in_resources = line.startswith("Resources:")
            continue
        key = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
        if in_resources and key:
            current = key.group(1)
        elif in_resources and current and re.match(
            r"^    Type:\s*AWS::Serverless::Function\s*$", line
        ):
            found.append(current)
            current = None
    return found


def zipped_size(path: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, path.read_bytes(), compresslevel=9)
    return len(buffer.getvalue())


def glibc_needed(path: Path) -> tuple:
    """The highest GLIBC_x.y[.z] version string in the binary's dynamic strings."""
    versions = {
        tuple(int(part) for part in match.groups() if part is not None)
        for match in re.finditer(rb"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?\x00", path.read_bytes())
    }
    return max(versions) if versions else ()


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    build = Path(sys.argv[1])
    lines, failed = [], False
    names = functions()
    if not names:
        print(f"no AWS::Serverless::Function found in {TEMPLATE}", file=sys.stderr)
        return 1
    for function in names:
        bootstrap = build / function / "bootstrap"
        if not bootstrap.is_file():
            print(f"{function}: {bootstrap} is missing (did sam build run?)", file=sys.stderr)
            failed = True
            continue
        raw = bootstrap.stat().st_size
        zipped = zipped_size(bootstrap)
        glibc = glibc_needed(bootstrap)
        glibc_text = "GLIBC_" + ".".join(map(str, glibc)) if glibc else "no glibc"
        lines.append(
            f"{function:<13} bootstrap {raw / 1024:>8.0f} KB  zipped {zipped / 1024:>7.0f} KB  needs {glibc_text}"
        )
        if glibc and glibc[:2] > RUNTIME_GLIBC:
            print(
                f"{function}: needs {glibc_text}, newer than provided.al2023's glibc "
                f"{RUNTIME_GLIBC[0]}.{RUNTIME_GLIBC[1]}; build on an older host or with "
                "cargo lambda's zig linker and a glibc-suffixed target",
                file=sys.stderr,
            )
            failed = True
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if len(sys.argv) == 3:
        out = Path(sys.argv[2])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
