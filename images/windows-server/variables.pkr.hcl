# Inputs of a win2022-core-dotnet bake. buildspecs/bake.yml passes every one
# without a default with -var, from the build's environment (see
# images/README.md). None of them has a default that could quietly point a
# build at another account's network or key: a missing one fails
# `packer validate`.

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
  description = "What started the bake (GILD_TRIGGER): schedule, push or manual."
  validation {
    condition     = contains(["schedule", "push", "manual"], var.trigger)
    error_message = "The trigger must be schedule, push or manual."
  }
}

variable "instance_type" {
  type        = string
  description = "Builder instance type."
  default     = "t3.large"
}

variable "root_volume_size" {
  type        = number
  description = "Root volume size of the image, in GiB (the Windows base AMI has 30; updates need room)."
  default     = 50
}

variable "output_dir" {
  type        = string
  description = "Local folder (relative to the working directory) for manifest.json and packages.txt."
  default     = "out"
}
