# Inputs of a bake of a Windows family (images/windows-server).
# buildspecs/bake.yml passes every one without a default with -var, from the
# build's environment (see images/README.md), and every name family.py
# reserves. None of them has a default that could quietly point a build at
# another account's network or key: a missing one fails `packer validate`.
#
# A family's catalog `variables` ([families.<name>.variables], strings) come
# in through a JSON var-file and may set only what is declared below and
# not reserved: edition, instance_type, root_volume_size. Each is validated
# here, because its value also reaches fields the amazon plugin renders as
# Go templates (ami_description, tags): nothing from the catalog gets there
# unchecked.

variable "family" {
  type        = string
  description = "The family baked (GILD_FAMILY): its playbook, image name and gild:family tag."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,63}$", var.family))
    error_message = "The family must be a gild.toml family name."
  }
}

variable "family_dir" {
  type        = string
  description = "The family's own folder, its `path` in gild.toml (per-family files: tests, anything its playbook reads as gild_family_dir)."
  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.family_dir)) && length(regexall("(^|/)[.][.]?(/|$)", var.family_dir)) == 0
    error_message = "The family folder must be a relative folder of the repository."
  }
}

variable "source_ami" {
  type        = string
  description = "A layered family's source: its parent's promoted AMI (GILD_SOURCE_AMI); empty for a root family, which starts from Amazon's base image."
  default     = ""
  validation {
    condition     = var.source_ami == "" || can(regex("^ami-[0-9a-f]{8,17}$", var.source_ami))
    error_message = "The source AMI must be an AMI id (ami-...) or empty."
  }
}

variable "parent_family" {
  type        = string
  description = "A layered family's parent (gild.toml `parent`); empty for a root family."
  default     = ""
  validation {
    condition     = var.parent_family == "" || can(regex("^[a-z0-9][a-z0-9-]{0,63}$", var.parent_family))
    error_message = "The parent must be a gild.toml family name or empty."
  }
}

variable "edition" {
  type        = string
  description = "Catalog variable: the Windows Server 2022 edition of a root family's base image, core (Server Core) or full (Desktop Experience)."
  default     = "core"
  validation {
    condition     = contains(["core", "full"], var.edition)
    error_message = "The edition must be core or full."
  }
}

variable "region" {
  type        = string
  description = "AWS region the builder runs and the AMI is registered in (AWS_REGION)."
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.region))
    error_message = "The region must look like us-east-1."
  }
}

variable "kms_key_id" {
  type        = string
  description = "KMS key (ARN or key id) that encrypts the builder's volume and the AMI's snapshots (GILD_KMS_KEY_ID)."
  validation {
    condition     = length(trimspace(var.kms_key_id)) > 0
    error_message = "A KMS key is required: gild images are always encrypted with the stack's key."
  }
}

variable "subnet_id" {
  type        = string
  description = "Private subnet the builder is launched in (GILD_SUBNET_ID)."
  validation {
    condition     = can(regex("^subnet-[0-9a-f]+$", var.subnet_id))
    error_message = "The subnet must be a subnet id (subnet-...)."
  }
}

variable "security_group_id" {
  type        = string
  description = "Security group with no inbound rules (GILD_SECURITY_GROUP_ID), the builder's base group."
  validation {
    condition     = can(regex("^sg-[0-9a-f]+$", var.security_group_id))
    error_message = "The security group must be a group id (sg-...)."
  }
}

variable "winrm_security_group_id" {
  type        = string
  description = "Security group allowing TCP 5986 only from the bake project's own security group (GILD_WINRM_SECURITY_GROUP_ID): Packer's WinRM cannot go through Session Manager."
  validation {
    condition     = can(regex("^sg-[0-9a-f]+$", var.winrm_security_group_id))
    error_message = "The WinRM security group must be a group id (sg-...)."
  }
}

variable "instance_profile" {
  type        = string
  description = "Instance profile name with AmazonSSMManagedInstanceCore (GILD_INSTANCE_PROFILE)."
  validation {
    condition     = length(trimspace(var.instance_profile)) > 0
    error_message = "An instance profile is required: the SSM agent and the CloudWatch agent need it."
  }
}

variable "source_commit" {
  type        = string
  description = "Git commit the bake builds (GILD_SOURCE_COMMIT); tagged on the AMI as gild:source-commit."
  validation {
    condition     = length(trimspace(var.source_commit)) > 0
    error_message = "The source commit is required: it is the image's provenance."
  }
}

variable "build_id" {
  type        = string
  description = "CodeBuild build id, project:uuid (CODEBUILD_BUILD_ID); tagged as gild:build-id, which bake-finished checks."
  validation {
    condition     = can(regex("^[^:]+:.+$", var.build_id))
    error_message = "The build id must be CodeBuild's project:uuid."
  }
}

variable "trigger" {
  type        = string
  description = "What started the bake (GILD_TRIGGER): schedule, push, manual, pull_request (a candidate) or parent (its parent was promoted)."
  validation {
    condition     = contains(["schedule", "push", "manual", "pull_request", "parent"], var.trigger)
    error_message = "The trigger must be schedule, push, manual, pull_request or parent."
  }
}

variable "instance_type" {
  type        = string
  description = "Catalog variable: the builder's instance type."
  default     = "t3.large"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*[.][a-z0-9]+$", var.instance_type))
    error_message = "The instance type must look like t3.large."
  }
}

variable "root_volume_size" {
  type        = number
  description = "Catalog variable: root volume size of the image, in GiB (the Windows base AMI has 30; updates need room; a child's at least its parent's)."
  default     = 50
  validation {
    condition     = var.root_volume_size >= 30 && var.root_volume_size <= 1024 && floor(var.root_volume_size) == var.root_volume_size
    error_message = "The root volume size must be a whole number of GiB, 30 to 1024."
  }
}

variable "output_dir" {
  type        = string
  description = "Local folder (relative to the working directory) for manifest.json and bom.tsv."
  default     = "out"
}
