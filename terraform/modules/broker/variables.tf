variable "name" {
  description = "Name of the broker."
  type        = string
  default     = "scale0"
}

variable "engine_version" {
  description = "RabbitMQ engine version of Amazon MQ."
  type        = string
  default     = "3.13"
}

variable "host_instance_type" {
  description = "Broker instance type (mq.m7g.large and up for a cluster; mq.t3.micro only for a single-instance test broker)."
  type        = string
  default     = "mq.m7g.large"
}

variable "deployment_mode" {
  description = "SINGLE_INSTANCE or CLUSTER_MULTI_AZ (three nodes; what production wants, with quorum_queues = true in the configuration)."
  type        = string
  default     = "CLUSTER_MULTI_AZ"

  validation {
    condition     = contains(["SINGLE_INSTANCE", "CLUSTER_MULTI_AZ"], var.deployment_mode)
    error_message = "deployment_mode must be SINGLE_INSTANCE or CLUSTER_MULTI_AZ."
  }
}

variable "subnet_ids" {
  description = "Private subnets of the broker: one for SINGLE_INSTANCE, several (in different zones) for a cluster."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the broker: producers, the worker and the functions must reach AMQPS (5671)."
  type        = list(string)
}

variable "username" {
  description = "The broker's user for scale0 (and its producers)."
  type        = string
  default     = "scale0"
}

variable "password" {
  description = "The user's password: 12-250 printable characters without , : or =."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.password) >= 12 && length(var.password) <= 250 && !can(regex("[,:=]", var.password))
    error_message = "password must be 12-250 characters without ',', ':' or '='."
  }
}

variable "kms_key_arn" {
  description = "KMS key of the credentials secret (the event source mapping reads it)."
  type        = string
}

variable "maintenance_window" {
  description = "Weekly maintenance window (UTC)."
  type = object({
    day_of_week = string
    time_of_day = string
  })
  default = {
    day_of_week = "SUNDAY"
    time_of_day = "03:00"
  }
}

variable "tags" {
  description = "Tags for the broker and the secret."
  type        = map(string)
  default     = {}
}
