#!/usr/bin/env python3
"""The image's bill of materials, gild.bom/1, from what the builder listed.

    bom.py --raw bom.tsv --family NAME --os linux|windows --image AMI --out bom.json

The template collects the list on the build instance at the end of the bake
(buildspecs/bootstrap/bom-linux.sh, bom-windows.ps1) and downloads it as
bom.tsv: a header `# gild.bom raw: collected_at=<UTC time>`, then one line
per package, `kind<TAB>name<TAB>version<TAB>arch` (empty fields empty).
bake.yml runs this once Packer has made the AMI, so the image is known, and
uploads the result to the artifacts bucket as `bom/<ami>.json`:

    {"schema": "gild.bom/1", "family": "debian13-base",
     "image": "ami-0123456789abcdef0", "os": "linux",
     "collected_at": "2026-12-06T21:00:00Z",
     "packages": [
       {"kind": "dpkg", "name": "openssl", "version": "3.0.15-1~deb12u1", "arch": "amd64"},
       {"kind": "hotfix", "name": "KB5044281"},
       {"kind": "feature", "name": "Web-Server"},
       {"kind": "program", "name": "Microsoft .NET Runtime - 8.0.11 (x64)",
        "version": "8.0.11.34221"}]}

Kinds by os: linux `dpkg` (name, version, arch); windows `hotfix` (name),
`feature` (name), `program` (name, and version when the program has one).
Packages come sorted (kind, name, arch, version) and once each. A line
that is not of the family's os, has no name, or a field with a control
character is refused (exit 1, naming the line), and so is an empty list:
an image without its bill of materials is not kept. The schema is
docs/bom.md's; crates/core reads it.
"""

import argparse
import datetime
import json
import re
import sys
import unicodedata

SCHEMA = "gild.bom/1"
KINDS = {"linux": ("dpkg",), "windows": ("hotfix", "feature", "program")}
# The fields each kind carries besides kind and name.
FIELDS = {
    "dpkg": ("version", "arch"),
    "hotfix": (),
    "feature": (),
    "program": ("version",),
}
FAMILY = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\Z", re.ASCII)
IMAGE = re.compile(r"ami-[0-9a-f]{8,17}\Z", re.ASCII)
HEADER = re.compile(
    r"# gild\.bom raw: collected_at=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\Z", re.ASCII
)


def has_control(text):
    """True when text holds a control character (Unicode category Cc)."""
    return any(unicodedata.category(c) == "Cc" for c in text)


def build(raw, family, os_name, image, now=None):
    """The gild.bom/1 document for raw (the bom.tsv text)."""
    if not FAMILY.match(family):
        raise ValueError(f"bad family name {family!r}")
    if os_name not in KINDS:
        raise ValueError(f"os {os_name!r} is not linux or windows")
    if not IMAGE.match(image):
        raise ValueError(f"{image!r} is not an AMI id")
    collected = None
    packages = set()
    for number, line in enumerate(raw.removeprefix("\ufeff").splitlines(), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if line.startswith("#"):
            header = HEADER.match(line)
            if header and collected is None:
                collected = header.group(1)
            continue
        fields = line.split("\t")
        kind, name = fields[0], fields[1] if len(fields) > 1 else ""
        if kind not in KINDS[os_name]:
            raise ValueError(
                f"line {number}: kind {kind!r} is not one of a {os_name} image "
                f"({', '.join(KINDS[os_name])})"
            )
        if not name.strip():
            raise ValueError(f"line {number}: a {kind} without a name")
        values = dict(zip(("version", "arch"), fields[2:4], strict=False))
        if any(has_control(v) for v in (name, *values.values())):
            raise ValueError(f"line {number}: a field holds a control character")
        entry = (
            ("kind", kind),
            ("name", name),
            *((k, values[k]) for k in FIELDS[kind] if values.get(k)),
        )
        packages.add(entry)
    if not packages:
        raise ValueError("the list names no package")
    if collected is None:
        moment = now or datetime.datetime.now(datetime.UTC)
        collected = moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def order(entry):
        fields = dict(entry)
        return (
            fields["kind"],
            fields["name"],
            fields.get("arch", ""),
            fields.get("version", ""),
        )

    return {
        "schema": SCHEMA,
        "family": family,
        "image": image,
        "os": os_name,
        "collected_at": collected,
        "packages": [dict(e) for e in sorted(packages, key=order)],
    }


def main(argv):
    """CLI entry point; prints the problem and exits 1 on any refusal."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", required=True)
    parser.add_argument("--family", required=True)
    parser.add_argument("--os", required=True, dest="os_name")
    parser.add_argument("--image", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        with open(args.raw, encoding="utf-8") as f:
            raw = f.read()
        bom = build(raw, args.family, args.os_name, args.image)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(bom, f, ensure_ascii=False)
            f.write("\n")
    except (OSError, UnicodeDecodeError, ValueError) as err:
        print(f"gild bom: {args.raw}: {err}", file=sys.stderr)
        return 1
    print(f"gild bom: {len(bom['packages'])} packages of {args.image} in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
