"""gild's invariants on one family's Packer templates, checked on the
structure python-hcl2 parses (tools/packer_hcl.py), not on their text.

Used by test_hcl.py on the real templates and on broken copies of them
(breakages.yml). Each problem names the attribute to fix.

A template folder may serve several families (gild.toml `template`, issue
14): the family then comes from the bake as `var.family`, and a family's
tag and playbook may name it so. A layered family starts from
`var.source_ami` (its parent's AMI), which the source filter must hold to
an image of this account (`self`) named for the parent.
"""

from __future__ import annotations

import re

import packer_hcl

REQUIRED_TAGS = (
    "gild:managed",
    "gild:family",
    "gild:build-id",
    "gild:source-commit",
    "gild:base-ami",
)
# The family as the bake passes it to a template (GILD_FAMILY).
FAMILY_VAR = "${var.family}"
# The bill of materials: collected on the builder, then downloaded.
BOM_SCRIPTS = {
    "linux": ("shell", "buildspecs/bootstrap/bom-linux.sh"),
    "windows": ("powershell", "buildspecs/bootstrap/bom-windows.ps1"),
}
BOM_FILE = "bom.tsv"
SHARING = (
    "ami_groups",
    "ami_users",
    "ami_org_arns",
    "ami_ou_arns",
    "snapshot_groups",
    "snapshot_users",
)
TEMP_SG = (
    "temporary_security_group_source_cidrs",
    "temporary_security_group_source_public_ip",
)
PLUGINS = {
    "amazon": "github.com/hashicorp/amazon",
    "ansible": "github.com/hashicorp/ansible",
}
EXACT_PIN = re.compile(r"^=\s*\d+\.\d+\.\d+$")
PINS_FILE = "ansible/pins.yml"


def _walk(value, key=None):
    """Every (key, value) pair of a parsed body, in nested blocks too."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from _walk(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, key)


def _one(body: dict, block: str) -> dict:
    blocks = body.get(block) or [{}]
    return blocks[0] if isinstance(blocks, list) else blocks


def check_folder(folder: packer_hcl.Folder, family: str, os_name: str) -> list[str]:
    """Everything wrong with one family's templates (empty: nothing)."""
    problems = list(folder.errors)
    problems += _check_plugins(folder)
    problems += _check_sources(folder, family, os_name)
    problems += _check_build(folder, family, os_name)
    for name, body in folder.files.items():
        for key, value in _walk(body):
            if key in SHARING:
                problems.append(
                    f"{name}: `{key}` must not be set: gild's images stay private"
                )
            if key == "associate_public_ip_address" and value is not False:
                problems.append(
                    f"{name}: `associate_public_ip_address` must not be set: no public address"
                )
    return [f"{family}: {p}" for p in problems]


def _check_plugins(folder: packer_hcl.Folder) -> list[str]:
    problems = []
    plugins = folder.required_plugins()
    for name, source in PLUGINS.items():
        spec = plugins.get(name)
        if spec is None:
            problems.append(
                f"packer.required_plugins has no `{name}` entry (source {source})"
            )
            continue
        if spec.get("source") != source:
            problems.append(
                f"plugin `{name}` must come from {source}, not {spec.get('source')!r}"
            )
        if not EXACT_PIN.match(str(spec.get("version", ""))):
            problems.append(
                f"plugin `{name}` must be pinned exactly (`= x.y.z`), not {spec.get('version')!r}"
            )
    return problems


def _check_tags(
    folder: packer_hcl.Folder, where: str, body: dict, key: str, family: str
) -> list[str]:
    tags = folder.mapping(body.get(key))
    if tags is None:
        return [
            f"{where}: `{key}` must be a map of tags (with {', '.join(REQUIRED_TAGS)})"
        ]
    problems = [
        f"{where}: `{key}` lacks the `{t}` tag"
        for t in REQUIRED_TAGS
        if not tags.get(t)
    ]
    if tags.get("gild:managed", "true") != "true":
        problems.append(
            f'{where}: `{key}` sets gild:managed to {tags["gild:managed"]!r}, not "true"'
        )
    if "gild:family" in tags and folder.resolve(tags["gild:family"]) not in (
        family,
        FAMILY_VAR,
    ):
        problems.append(
            f"{where}: `{key}` tags gild:family {tags['gild:family']!r}, but the family is {family} (or var.family)"
        )
    if "gild:base-ami" in tags and "SourceAMI" not in str(tags["gild:base-ami"]):
        problems.append(
            f"{where}: `{key}` must tag gild:base-ami with {{{{ .SourceAMI }}}}"
        )
    return problems


def _check_sources(folder: packer_hcl.Folder, family: str, os_name: str) -> list[str]:
    problems = []
    sources = folder.sources()
    if not any(kind == "amazon-ebs" for kind, _, _ in sources):
        problems.append('no `source "amazon-ebs"` block')
    for kind, name, body in sources:
        where = f"source {kind}.{name}"
        if kind != "amazon-ebs":
            problems.append(f"{where}: gild builds with amazon-ebs sources only")
            continue
        get = body.get
        # Encrypted with the stack's key (a variable, never a literal key).
        if get("encrypt_boot") is not True:
            problems.append(f"{where}: `encrypt_boot = true` is required")
        if get("kms_key_id") != "${var.kms_key_id}":
            problems.append(
                f"{where}: `kms_key_id = var.kms_key_id` is required (the stack's key), not {get('kms_key_id')!r}"
            )
        mappings = get("launch_block_device_mappings") or []
        if not mappings:
            problems.append(
                f"{where}: `launch_block_device_mappings` must encrypt the builder's volume"
            )
        for mapping in mappings:
            if mapping.get("encrypted") is not True or not mapping.get("kms_key_id"):
                problems.append(
                    f"{where}: every `launch_block_device_mappings` needs `encrypted = true` and a `kms_key_id`"
                )
        # IMDSv2 only: the builder and every instance of the image.
        if folder.resolve(get("imds_support")) != "v2.0":
            problems.append(f'{where}: `imds_support = "v2.0"` is required')
        if (
            folder.resolve(_one(body, "metadata_options").get("http_tokens"))
            != "required"
        ):
            problems.append(
                f'{where}: `metadata_options {{ http_tokens = "required" }}` is required'
            )
        problems += _check_source_image(folder, where, body)
        ami_name = str(folder.resolve(get("ami_name")))
        if not (
            ("local.family" in ami_name or family in ami_name)
            and "timestamp" in ami_name
        ):
            problems.append(
                f"{where}: `ami_name` must name the family and a timestamp, not {ami_name!r}"
            )
        problems += _check_tags(folder, where, body, "tags", family)
        problems += _check_tags(folder, where, body, "snapshot_tags", family)
        run_tags = folder.mapping(get("run_tags")) or {}
        if not {"gild:managed", "gild:build-id"} <= set(run_tags):
            problems.append(
                f"{where}: `run_tags` must carry gild:managed and gild:build-id (the builder is findable)"
            )
        # No inbound path but the intended one.
        if not get("security_group_id") and not get("security_group_ids"):
            problems.append(
                f"{where}: use the stack's security group (`security_group_id`), not a temporary one"
            )
        problems += [
            f"{where}: `{key}` must not be used" for key in TEMP_SG if key in body
        ]
        if not get("iam_instance_profile"):
            problems.append(
                f"{where}: `iam_instance_profile` is required (SSM-managed builder)"
            )
        communicator = folder.resolve(get("communicator"))
        if os_name == "linux":
            if communicator != "ssh":
                problems.append(f'{where}: Linux builders use `communicator = "ssh"`')
            if folder.resolve(get("ssh_interface")) != "session_manager":
                problems.append(
                    f'{where}: Linux builders are reached through `ssh_interface = "session_manager"`'
                )
            if get("security_group_ids"):
                problems.append(
                    f"{where}: a Linux builder needs only the no-inbound group (`security_group_id`)"
                )
        else:
            if communicator != "winrm":
                problems.append(
                    f'{where}: Windows builders use `communicator = "winrm"`'
                )
            if get("winrm_use_ssl") is not True or get("winrm_port") != 5986:
                problems.append(
                    f"{where}: WinRM must use HTTPS on 5986 (`winrm_use_ssl = true`, `winrm_port = 5986`)"
                )
            if get("winrm_use_ntlm") is not True:
                problems.append(
                    f"{where}: WinRM must authenticate with NTLM (`winrm_use_ntlm = true`), not Basic"
                )
            groups = get("security_group_ids") or []
            if groups != ["${var.security_group_id}", "${var.winrm_security_group_id}"]:
                problems.append(
                    f"{where}: `security_group_ids` must be exactly the no-inbound group and the stack's WinRM group, not {groups!r}"
                )
            if not get("user_data_file"):
                problems.append(
                    f"{where}: a `user_data_file` must set up the WinRM HTTPS listener"
                )
    return problems


def _check_source_image(folder: packer_hcl.Folder, where: str, body: dict) -> list[str]:
    """A layered family's source: `source_ami = var.source_ami`, and a
    filter whose owner is `self` and name the parent's when it is set
    (packer-plugin-amazon v1.8.0 applies both to one DescribeImages)."""
    problems = []
    if body.get("source_ami") != "${var.source_ami}":
        problems.append(
            f"{where}: `source_ami = var.source_ami` is required (a layered family's parent AMI)"
        )
    flt = _one(body, "source_ami_filter")
    owners = [str(folder.resolve(o)) for o in flt.get("owners") or []]
    name = str(folder.resolve((folder.mapping(flt.get("filters")) or {}).get("name")))
    if not owners:
        problems.append(f"{where}: `source_ami_filter` must name its `owners`")
    elif not all('"self"' in o and "var.source_ami" in o for o in owners):
        problems.append(
            f"{where}: `source_ami_filter` owners must be `self` when var.source_ami is set "
            f"(a parent's image is this account's), not {owners!r}"
        )
    if "var.parent_family" not in name:
        problems.append(
            f"{where}: `source_ami_filter` must match the parent's images by name "
            f"(gild-${{var.parent_family}}-*) when var.source_ami is set, not {name!r}"
        )
    return problems


def _check_build(folder: packer_hcl.Folder, family: str, os_name: str) -> list[str]:
    if not folder.blocks("build"):
        return ["no `build` block"]
    problems = []
    playbook = f"ansible/playbooks/{family}.yml"
    # The family's playbook by name, or by the family the bake passes
    # (var.family, or local.family when that is the family or var.family).
    accepted = {playbook, "ansible/playbooks/${var.family}.yml"}
    if folder.resolve(folder.locals.get("family")) in (family, FAMILY_VAR):
        accepted.add("ansible/playbooks/${local.family}.yml")
    ansible = folder.provisioners("ansible")
    if not ansible:
        problems.append(f"no ansible provisioner running {playbook}")
    for _, body in ansible:
        played = str(folder.resolve(body.get("playbook_file")))
        named = any(played.endswith(a) for a in accepted)
        if not named:
            problems.append(
                f"the ansible provisioner must run {playbook}, not {played!r}"
            )
        if body.get("use_proxy") is not False:
            problems.append(
                "the ansible provisioner must connect directly (`use_proxy = false`)"
            )
        arguments = body.get("extra_arguments", [])
        passed = [
            packer_hcl.repo_relative(f) for f in packer_hcl.extra_vars_files(arguments)
        ]
        if PINS_FILE not in passed:
            problems.append(
                f"the ansible provisioner must pass --extra-vars @{PINS_FILE}, passes {passed}"
            )
        if os_name == "windows":
            text = " ".join(str(packer_hcl.unquote(a)) for a in arguments)
            for needed in (
                "ansible_connection=winrm",
                "ansible_winrm_server_cert_validation=ignore",
            ):
                if needed not in text:
                    problems.append(
                        f"the ansible provisioner's `extra_arguments` must set {needed}"
                    )
    kind, script = BOM_SCRIPTS[os_name]
    provisioners = folder.provisioners()
    collects = [
        i
        for i, (k, b) in enumerate(provisioners)
        if k == kind and str(folder.resolve(b.get("script"))).endswith(script)
    ]
    downloads = [
        i
        for i, (k, b) in enumerate(provisioners)
        if k == "file"
        and folder.resolve(b.get("direction")) == "download"
        and str(folder.resolve(b.get("source"))).endswith(BOM_FILE)
    ]
    if not collects:
        problems.append(
            f"no `{kind}` provisioner running {script} (the bill of materials)"
        )
    if not downloads:
        problems.append(
            f'no `file` provisioner downloading the bill of materials, {BOM_FILE} (`direction = "download"`)'
        )
    if collects and downloads and min(collects) > max(downloads):
        problems.append(f"the bill of materials is downloaded before {script} runs")
    manifests = folder.post_processors("manifest")
    if not manifests:
        problems.append(
            'no `post-processor "manifest"`: the buildspec reads the AMI id from it'
        )
    for _, body in manifests:
        if body.get("strip_path") is not True:
            problems.append("the manifest post-processor needs `strip_path = true`")
        custom = folder.mapping(body.get("custom_data")) or {}
        problems += [
            f"the manifest post-processor's `custom_data` lacks `{k}`"
            for k in ("family", "source_commit", "build_id", "source_ami")
            if k not in custom
        ]
    return problems
