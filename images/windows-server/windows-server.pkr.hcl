# windows-server: the one Packer template of every Windows Server 2022
# family of gild.toml (`template = "images/windows-server"`). What differs
# per family comes from the bake, never from a copy of this file:
#   - var.family: the family (GILD_FAMILY), its playbook
#     (ansible/playbooks/<family>.yml), image name and tags;
#   - var.family_dir: the family's own folder (its `path`), handed to Ansible
#     as gild_family_dir for any per-family file;
#   - var.source_ami / var.parent_family: a layered family bakes from its
#     parent's promoted AMI (GILD_SOURCE_AMI); a root family from Amazon's
#     base image of var.edition;
#   - the catalog's `[families.<name>.variables]` (a JSON var-file written
#     by buildspecs/bootstrap/family.py): here only `edition`, and the
#     builder's size (variables.pkr.hcl validates every one).
# The family's tests are its own tests/run.ps1 plus tests/run.ps1 here
# (images/README.md). Generalised with EC2Launch v2's sysprep. See
# images/README.md for the contract with the buildspecs and the Lambdas.

packer {
  required_version = ">= 1.16.1"
  required_plugins {
    amazon = {
      version = "= 1.8.0"
      source  = "github.com/hashicorp/amazon"
    }
    ansible = {
      version = "= 1.1.4"
      source  = "github.com/hashicorp/ansible"
    }
  }
}

locals {
  family = var.family
  # Templates live in images/<template>/: the repository root is two levels
  # up, whatever directory Packer is started from.
  repo_root = "${path.root}/../.."
  timestamp = formatdate("YYYYMMDD-hhmmss", timestamp())

  # The source image. A root family: the newest of Amazon's Windows Server
  # 2022 base AMIs of its edition (account 801119661308). A child: its
  # parent's promoted AMI, var.source_ami, and the filter then only holds it
  # to being one of ours: owned by this account, named as gild names the
  # parent's images.
  #
  # Why the filter stays set with source_ami: hashicorp/packer-plugin-amazon
  # v1.8.0 (the version pinned above) looks the source up with ONE
  # DescribeImages call holding both: ImageIds = [source_ami] when it is set,
  # plus the filter's Filters and Owners (builder/common/
  # step_source_ami_info.go, StepSourceAMIInfo.Run, then ami_filter.go,
  # GetFilteredImage); EC2 answers only images matching all of them, and none
  # fails the build ("No AMI was found matching filters"). run_config.go
  # documents the same ("The provided source_ami must meet all of the
  # filtering criteria provided in source_ami_filter"), and requires an
  # owner in the filter only when source_ami is empty. So with the base
  # image's filter left in place a child could never start from its parent
  # (owned by this account, named gild-<parent>-...), and an empty
  # source_ami ("") leaves the plugin on the filter alone (`if s.SourceAmi
  # != ""`).
  source_owner = var.source_ami == "" ? "801119661308" : "self"
  source_name  = var.source_ami == "" ? "Windows_Server-2022-English-${title(var.edition)}-Base-*" : "gild-${var.parent_family}-*"

  # Set at creation on the AMI and its snapshots. bake-finished only touches
  # an image carrying gild:managed=true and its own build's gild:build-id,
  # and adds a layered family's gild:parent-family/gild:parent-ami itself
  # (gild:base-ami, the source, is then the parent's AMI).
  image_tags = {
    Name                 = "gild-${local.family}-${local.timestamp}"
    "gild:managed"       = "true"
    "gild:family"        = local.family
    "gild:trigger"       = var.trigger
    "gild:source-commit" = var.source_commit
    "gild:build-id"      = var.build_id
    "gild:base-ami"      = "{{ .SourceAMI }}"
  }
}

source "amazon-ebs" "windows" {
  region        = var.region
  instance_type = var.instance_type

  # See local.source_owner above: the parent's AMI, or the newest base image.
  source_ami = var.source_ami
  source_ami_filter {
    filters = {
      name                = local.source_name
      architecture        = "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = [local.source_owner]
    most_recent = true
  }

  ami_name                = "gild-${local.family}-${local.timestamp}"
  ami_description         = "gild ${local.family}: Windows Server 2022 ${title(var.edition)}, commit ${var.source_commit}, build ${var.build_id}"
  ami_virtualization_type = "hvm"
  ena_support             = true
  sriov_support           = true
  # Instances launched from the image default to IMDSv2 only.
  imds_support = "v2.0"

  # The AMI stays private: no ami_users, ami_groups or org sharing here.
  # Its snapshots are encrypted with the stack's key.
  encrypt_boot = true
  kms_key_id   = var.kms_key_id

  # The builder itself: IMDSv2 only, encrypted volume, no public address.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  launch_block_device_mappings {
    device_name           = "/dev/sda1"
    volume_size           = var.root_volume_size
    volume_type           = "gp3"
    encrypted             = true
    kms_key_id            = var.kms_key_id
    delete_on_termination = true
  }

  subnet_id = var.subnet_id
  # Session Manager cannot carry WinRM, so Packer talks to the builder's
  # private address on 5986: the second group admits exactly that, and only
  # from the bake project's own security group.
  security_group_ids   = [var.security_group_id, var.winrm_security_group_id]
  iam_instance_profile = var.instance_profile
  ssh_interface        = "private_ip"

  # Creates a certificate on the instance and a WinRM HTTPS listener on 5986
  # (NTLM only: Basic auth and unencrypted traffic stay off). The last
  # provisioner removes the listener and the certificate again. A child's
  # source (its parent's image) was sealed the same way, so its first boot
  # runs this too.
  user_data_file = "${local.repo_root}/buildspecs/bootstrap/windows-winrm-https.ps1"

  communicator   = "winrm"
  winrm_username = "Administrator"
  winrm_port     = 5986
  winrm_use_ssl  = true
  winrm_use_ntlm = true
  # The only certificate the listener has is the self-signed one the
  # bootstrap generated on this instance a minute ago: no CA can vouch for
  # it, so it cannot be validated. The traffic is still TLS-encrypted, on a
  # private address admitted only from the bake project's security group.
  winrm_insecure = true
  winrm_timeout  = "30m"
  # No password here: Packer decrypts the random one EC2Launch sets, with
  # the build's temporary key pair.
  windows_password_timeout = "30m"

  # EC2Launch's sysprep shuts the instance down itself; Packer waits for it.
  disable_stop_instance = true

  tags          = local.image_tags
  snapshot_tags = local.image_tags
  # The builder instance and its volume carry the same tags, so a leftover
  # is findable by build (recent plugins also copy run_tags onto the AMI).
  run_tags        = local.image_tags
  run_volume_tags = local.image_tags

  # Sysprep and large AMIs take a while: wait up to an hour per step.
  aws_polling {
    delay_seconds = 30
    max_attempts  = 120
  }
}

build {
  name    = "windows-server"
  sources = ["source.amazon-ebs.windows"]

  # Everything that makes the image: the family's playbook (a root family:
  # Windows updates, .NET, agents, baseline; a child: only what it adds to
  # its parent's image). Ansible connects straight to the builder over WinRM
  # HTTPS (NTLM, message-encrypted inside TLS); the plugin hands it the
  # password.
  provisioner "ansible" {
    playbook_file = "${local.repo_root}/ansible/playbooks/${local.family}.yml"
    user          = "Administrator"
    use_proxy     = false
    ansible_env_vars = [
      "ANSIBLE_CONFIG=${local.repo_root}/ansible/ansible.cfg",
      "ANSIBLE_ROLES_PATH=${local.repo_root}/ansible/roles",
      "ANSIBLE_NOCOLOR=True",
    ]
    extra_arguments = [
      # Every version and checksum pin the roles check (ansible/pins.yml).
      # The plugin runs ansible-playbook with packer's working directory
      # (exec without a Dir: packer-plugin-ansible@v1.1.4
      # provisioner/ansible/provisioner.go), so the path is made absolute.
      "--extra-vars", "@${abspath(local.repo_root)}/ansible/pins.yml",
      "--extra-vars", "ansible_connection=winrm ansible_port=5986 ansible_winrm_scheme=https ansible_winrm_transport=ntlm",
      # Same self-signed, instance-generated certificate as winrm_insecure.
      "--extra-vars", "ansible_winrm_server_cert_validation=ignore",
      "--extra-vars", "ansible_winrm_operation_timeout_sec=120 ansible_winrm_read_timeout_sec=150",
      "--extra-vars", jsonencode({
        gild_family        = local.family
        gild_family_dir    = abspath("${local.repo_root}/${var.family_dir}")
        gild_parent_family = var.parent_family
        gild_source_commit = var.source_commit
        gild_build_id      = var.build_id
        gild_trigger       = var.trigger
        gild_aws_region    = var.region
      }),
    ]
  }

  # Finish whatever the updates left pending before the image is sealed.
  provisioner "windows-restart" {
    restart_timeout = "45m"
  }

  # The bill of materials, collected last (after the restart, so the
  # hotfixes an update finished installing are in): installed hotfixes,
  # Windows features and programs, as tab-separated lines in C:\gild\bom.tsv
  # (buildspecs/bootstrap/bom-windows.ps1). It stays on the image too.
  provisioner "powershell" {
    script = "${local.repo_root}/buildspecs/bootstrap/bom-windows.ps1"
  }

  # ... brought back for the bake, which fills in the AMI and keeps it
  # (bake.yml: bom/<ami>.json). A missing list fails the bake.
  provisioner "file" {
    direction   = "download"
    source      = "C:\\gild\\bom.tsv"
    destination = "${var.output_dir}/bom.tsv"
  }

  # Seal. Removing the WinRM listener would cut this very connection, so the
  # provisioner only starts the seal script through WMI (outside WinRM's job
  # object, so it outlives this session) and returns. The script removes the
  # HTTPS listener, its firewall rule and certificate, then runs EC2Launch
  # v2's sysprep, which shuts the instance down; Packer waits for the stop.
  provisioner "powershell" {
    inline = [
      "$ErrorActionPreference = 'Stop'",
      "$seal = @'",
      "Start-Sleep -Seconds 20",
      "Get-ChildItem -Path 'WSMan:\\localhost\\Listener' | Where-Object { $_.Keys -contains 'Transport=HTTPS' } | Remove-Item -Recurse -Force",
      "Remove-NetFirewallRule -Name 'gild-winrm-https' -ErrorAction SilentlyContinue",
      "Get-ChildItem -Path 'Cert:\\LocalMachine\\My' | Where-Object { $_.FriendlyName -eq 'gild-packer-winrm' } | Remove-Item -Force",
      "Remove-Item -Path 'C:/gild/seal.ps1' -Force -ErrorAction SilentlyContinue",
      "& \"$env:ProgramFiles/Amazon/EC2Launch/ec2launch.exe\" sysprep --shutdown=true --clean=true",
      "'@",
      "Set-Content -Path 'C:/gild/seal.ps1' -Value $seal -Encoding UTF8",
      "$started = Invoke-CimMethod -ClassName Win32_Process -MethodName Create -Arguments @{ CommandLine = 'powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File C:/gild/seal.ps1' }",
      "if ($started.ReturnValue -ne 0) { throw \"could not start the seal script: $($started.ReturnValue)\" }",
      "Write-Output 'gild: sealing (WinRM listener removed, then sysprep and shutdown)'",
    ]
  }

  post-processor "manifest" {
    output     = "${var.output_dir}/manifest.json"
    strip_path = true
    custom_data = {
      family        = local.family
      parent_family = var.parent_family
      source_commit = var.source_commit
      build_id      = var.build_id
      trigger       = var.trigger
      source_ami    = "${build.SourceAMI}"
    }
  }
}
