variable "name" {
  description = "Replication group id."
  type        = string
  default     = "scale0"
}

variable "node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.small"
}

variable "engine_version" {
  description = "Redis OSS engine version."
  type        = string
  default     = "7.1"
}

variable "replicas" {
  description = "Replicas besides the primary; at least 1 gives automatic failover across zones."
  type        = number
  default     = 1

  validation {
    condition     = var.replicas >= 0 && var.replicas <= 5
    error_message = "replicas must be between 0 and 5."
  }
}

variable "subnet_ids" {
  description = "Private subnets of the cache nodes."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the nodes: the worker and the functions must reach 6379."
  type        = list(string)
}

variable "auth_token" {
  description = "Redis AUTH token: 16-128 printable characters without spaces, \" / or @."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.auth_token) >= 16 && length(var.auth_token) <= 128 && !can(regex("[ \"/@]", var.auth_token))
    error_message = "auth_token must be 16-128 characters without spaces, '\"', '/' or '@'."
  }
}

variable "kms_key_arn" {
  description = "KMS key for encryption at rest."
  type        = string
}

variable "snapshot_retention_days" {
  description = "Days of daily snapshots kept."
  type        = number
  default     = 7
}

variable "tags" {
  description = "Tags for the replication group."
  type        = map(string)
  default     = {}
}
