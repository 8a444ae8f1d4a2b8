# debian13-base: Debian 13 (trixie) amd64 from Debian's official AMI, fully
# updated, with the SSM and CloudWatch agents and gild's baseline hardening
# (ansible/playbooks/debian13-base.yml), sealed so every instance starts as a
# fresh cloud-init instance. The family comes from the bake (var.family), as
# in every template; a layered Linux family (`parent`) would start from its
# parent's promoted AMI (var.source_ami) instead of Debian's. See
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
  # Templates live in images/<family>/: the repository root is two levels up,
  # whatever directory Packer is started from.
  repo_root = "${path.root}/../.."
  timestamp = formatdate("YYYYMMDD-hhmmss", timestamp())

  # The source image: Debian's newest, or a child's parent AMI held to being
  # one of ours. packer-plugin-amazon v1.8.0 looks the source up with one
  # DescribeImages holding both source_ami (ImageIds) and the filter's
  # Filters and Owners, so the filter must match the parent's image too
  # (images/windows-server/windows-server.pkr.hcl says where in the plugin).
  source_owner = var.source_ami == "" ? "136693071363" : "self"
  source_name  = var.source_ami == "" ? "debian-13-amd64-*" : "gild-${var.parent_family}-*"

  # Set at creation on the AMI and its snapshots. bake-finished only touches
  # an image carrying gild:managed=true and its own build's gild:build-id.
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

source "amazon-ebs" "debian13" {
  region        = var.region
  instance_type = var.instance_type

  # Debian's own account publishes the official images; most_recent picks
  # the latest point release, so a monthly bake starts from current packages.
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
  ami_description         = "gild ${local.family}: Debian 13 amd64, commit ${var.source_commit}, build ${var.build_id}"
  ami_virtualization_type = "hvm"
  ena_support             = true
  sriov_support           = true
  # Instances launched from the image default to IMDSv2 only.
  imds_support = "v2.0"

  # The AMI stays private: no ami_users, ami_groups or org sharing here.
  # Its snapshots are encrypted with the stack's key.
  encrypt_boot = true
  kms_key_id   = var.kms_key_id

  # The builder itself: IMDSv2 only, encrypted volume, no public address,
  # a security group with no inbound rule, reached through Session Manager.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = var.root_volume_size
    volume_type           = "gp3"
    encrypted             = true
    kms_key_id            = var.kms_key_id
    delete_on_termination = true
  }

  subnet_id            = var.subnet_id
  security_group_id    = var.security_group_id
  iam_instance_profile = var.instance_profile

  # Debian's AMIs ship without the SSM agent; this user data installs it at
  # first boot so the Session Manager tunnel can open (the ssm-agent role
  # then manages it like any other package).
  user_data_file = "${local.repo_root}/buildspecs/bootstrap/debian-ssm-agent.sh"

  communicator            = "ssh"
  ssh_username            = "admin"
  ssh_interface           = "session_manager"
  ssh_timeout             = "20m"
  pause_before_ssm        = "60s"
  temporary_key_pair_type = "ed25519"

  tags          = local.image_tags
  snapshot_tags = local.image_tags
  # The builder instance and its volume carry the same tags, so a leftover
  # is findable by build (recent plugins also copy run_tags onto the AMI).
  run_tags        = local.image_tags
  run_volume_tags = local.image_tags

  aws_polling {
    delay_seconds = 15
    max_attempts  = 240
  }
}

build {
  name    = "debian13-base"
  sources = ["source.amazon-ebs.debian13"]

  # Everything that makes the image: updates, agents, hardening. Ansible
  # opens its own SSH session through Session Manager (there is no address
  # it could reach directly), as documented for the ansible plugin.
  provisioner "ansible" {
    playbook_file = "${local.repo_root}/ansible/playbooks/${local.family}.yml"
    user          = "admin"
    use_proxy     = false
    # Ansible's own SSH session, tunnelled through Session Manager.
    inventory_file_template = "{{ .HostAlias }} ansible_host={{ .ID }} ansible_user={{ .User }} ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ProxyCommand=\"aws ssm start-session --target %h --document-name AWS-StartSSHSession --parameters portNumber=%p --region ${var.region}\"'\n"
    ansible_env_vars = [
      "ANSIBLE_CONFIG=${local.repo_root}/ansible/ansible.cfg",
      "ANSIBLE_ROLES_PATH=${local.repo_root}/ansible/roles",
      "ANSIBLE_PIPELINING=True",
      "ANSIBLE_NOCOLOR=True",
      "AWS_DEFAULT_REGION=${var.region}",
    ]
    extra_arguments = [
      # Every version and checksum pin the roles check (ansible/pins.yml).
      # The plugin runs ansible-playbook with packer's working directory
      # (exec without a Dir: packer-plugin-ansible@v1.1.4
      # provisioner/ansible/provisioner.go), so the path is made absolute.
      "--extra-vars", "@${abspath(local.repo_root)}/ansible/pins.yml",
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

  # The bill of materials, collected last: every installed package's name,
  # version and architecture (dpkg-query), as tab-separated lines in
  # /var/log/gild/bom.tsv (buildspecs/bootstrap/bom-linux.sh, as root). It
  # stays on the image too.
  provisioner "shell" {
    script          = "${local.repo_root}/buildspecs/bootstrap/bom-linux.sh"
    execute_command = "chmod +x {{ .Path }}; {{ .Vars }} sudo -n -E {{ .Path }}"
  }

  # ... brought back for the bake, which fills in the AMI and keeps it
  # (bake.yml: bom/<ami>.json). A missing list fails the bake.
  provisioner "file" {
    direction   = "download"
    source      = "/var/log/gild/bom.tsv"
    destination = "${var.output_dir}/bom.tsv"
  }

  # Seal: agents stopped (the SSM agent carries this very session and stops
  # with the instance), no build key left behind, and cloud-init reset so
  # every instance of the image runs first boot afresh (new machine-id,
  # SSH host keys, user data).
  provisioner "shell" {
    inline = [
      "sudo systemctl stop amazon-cloudwatch-agent.service 2>/dev/null || true",
      "sudo apt-get clean",
      "sudo rm -f /root/.ssh/authorized_keys /home/admin/.ssh/authorized_keys",
      "sudo cloud-init clean --logs --seed --machine-id",
      "sudo sync",
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
