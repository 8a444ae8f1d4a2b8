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
As docs/bom.md wants it: a package's identity (kind, name, arch) appears
once (a program Windows lists twice, under both Uninstall keys at two
versions, is kept at its highest version), fields are trimmed and clipped
to 256 characters (name) and 128 (version), a field a kind does not have is
absent, and the packages come in identity order (dpkg, hotfix, feature,
program; then name, then arch). A line that is not of the family's os, has
no name, a dpkg package without version or architecture, or a field with a
control character is refused (exit 1, naming the line), and so is an empty
list: an image without its bill of materials is not kept. crates/core reads
the result (gild_core::bom).
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
KIND_ORDER = ("dpkg", "hotfix", "feature", "program")
MAX_NAME = 256
MAX_VERSION = 128
FAMILY = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\Z", re.ASCII)
IMAGE = re.compile(r"ami-[0-9a-f]{8,17}\Z", re.ASCII)
HEADER = re.compile(
    r"# gild\.bom raw: collected_at=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\Z", re.ASCII
)


def has_control(text):
    """True when text holds a control character (Unicode category Cc)."""
    return any(unicodedata.category(c) == "Cc" for c in text)


def program_version_key(version):
    """Dotted numbers, component by component, as docs/bom.md orders a
    program's versions: the leading digits as a number, then the rest."""
    key = []
    for part in version.split("."):
        digits = re.match(r"[0-9]*", part).group()
        key.append((int(digits) if digits else 0, part[len(digits) :]))
    return key


def build(raw, family, os_name, image, now=None):
    """The gild.bom/1 document for raw (the bom.tsv text)."""
    if not FAMILY.match(family):
        raise ValueError(f"bad family name {family!r}")
    if os_name not in KINDS:
        raise ValueError(f"os {os_name!r} is not linux or windows")
    if not IMAGE.match(image):
        raise ValueError(f"{image!r} is not an AMI id")
    collected = None
    packages = {}
    for number, line in enumerate(raw.removeprefix("\ufeff").splitlines(), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if line.startswith("#"):
            header = HEADER.match(line)
            if header and collected is None:
                collected = header.group(1)
            continue
        fields = [f.strip() for f in line.split("\t")] + ["", "", ""]
        kind, name = fields[0], fields[1][:MAX_NAME].rstrip()
        version, arch = fields[2][:MAX_VERSION].rstrip(), fields[3]
        if kind not in KINDS[os_name]:
            raise ValueError(
                f"line {number}: kind {kind!r} is not one of a {os_name} image "
                f"({', '.join(KINDS[os_name])})"
            )
        if not name:
            raise ValueError(f"line {number}: a {kind} without a name")
        if kind == "dpkg" and not (version and arch):
            raise ValueError(f"line {number}: dpkg {name} without version or arch")
        if any(has_control(v) for v in (name, version, arch)):
            raise ValueError(f"line {number}: a field holds a control character")
        values = {"version": version, "arch": arch}
        entry = {"kind": kind, "name": name}
        entry.update((k, values[k]) for k in FIELDS[kind] if values[k])
        identity = (kind, name, entry.get("arch", ""))
        known = packages.get(identity)
        if known is None or entry == known:
            packages[identity] = entry
        elif kind == "program":
            # Listed twice at two versions: the highest is what runs.
            packages[identity] = max(
                (known, entry), key=lambda e: program_version_key(e.get("version", ""))
            )
        else:
            raise ValueError(
                f"line {number}: {kind} {name} listed twice, at two versions"
            )
    if not packages:
        raise ValueError("the list names no package")
    if collected is None:
        moment = now or datetime.datetime.now(datetime.UTC)
        collected = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    order = sorted(packages, key=lambda i: (KIND_ORDER.index(i[0]), i[1], i[2]))
    return {
        "schema": SCHEMA,
        "family": family,
        "image": image,
        "os": os_name,
        "collected_at": collected,
        "packages": [packages[i] for i in order],
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
