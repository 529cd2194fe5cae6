variable "pool" {
  description = "One pool, as module `config` outputs it (`pools[\"<deployment>/<pool>\"]`)."
  type = object({
    deployment                    = string
    pool                          = string
    asg_name                      = string
    instance_type                 = string
    capacity_type                 = string
    max_instances                 = number
    warm_pool_size                = number
    launching_heartbeat_seconds   = number
    terminating_heartbeat_seconds = number
  })
}

variable "image_id" {
  description = "AMI of the GPU instances (e.g. a Deep Learning AMI with the model server installed)."
  type        = string
}

variable "user_data" {
  description = "The model server's start-up script (plain text; base64-encoded here). It must serve the deployment's readiness and inference paths on the endpoint_template's port."
  type        = string
  default     = ""
}

variable "subnet_ids" {
  description = "Private subnets the instances launch in (with resource-name DNS A records, for the default endpoint_template)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids: at least one subnet is required."
  }
}

variable "security_group_ids" {
  description = "Security groups of the instances: the worker and the functions must reach the model server's port."
  type        = list(string)
}

variable "instance_profile_name" {
  description = "IAM instance profile of the instances (e.g. to read model weights from S3); null for none."
  type        = string
  default     = null
}

variable "root_volume_size_gb" {
  description = "Size of the encrypted root volume, in GiB (model weights usually live there)."
  type        = number
  default     = 100

  validation {
    condition     = var.root_volume_size_gb >= 8
    error_message = "root_volume_size_gb must be at least 8."
  }
}

variable "ebs_kms_key_arn" {
  description = "KMS key for the root volume; null for the account's default EBS key."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource; the group also tags instances with `scale0:deployment` and `scale0:pool` (activate them as cost allocation tags for scoped AWS Budgets)."
  type        = map(string)
  default     = {}
}
