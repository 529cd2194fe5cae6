variable "name" {
  description = "Name of the ECS cluster, service and task family."
  type        = string
  default     = "scale0-worker"
}

variable "image" {
  description = "Container image with `scale0-queue-worker` on PATH, /bin/sh and curl (the health check)."
  type        = string
}

variable "desired_count" {
  description = "Worker tasks. Two or more keep requests held through a task's loss (they go back to the queue and the other takes them)."
  type        = number
  default     = 2

  validation {
    condition     = var.desired_count >= 1
    error_message = "desired_count must be at least 1: without a worker nothing consumes the request queues."
  }
}

variable "cpu" {
  description = "Task CPU units (1024 = one vCPU)."
  type        = number
  default     = 512
}

variable "memory_mb" {
  description = "Task memory, in MiB."
  type        = number
  default     = 1024
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64, matching the image."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "metrics_port" {
  description = "Port of /health and /metrics (SCALE0_METRICS_ADDR)."
  type        = number
  default     = 9464
}

variable "drain_timeout_seconds" {
  description = "Time in-flight requests get after SIGTERM (--drain-timeout); the task's stop timeout is this plus 10 s, at most 120."
  type        = number
  default     = 30

  validation {
    condition     = var.drain_timeout_seconds >= 1 && var.drain_timeout_seconds <= 110
    error_message = "drain_timeout_seconds must be between 1 and 110 (Fargate stops a task at most 120 s after SIGTERM)."
  }
}

variable "config_parameter_arn" {
  description = "ARN of the SSM parameter with the configuration (control-plane's `config_parameter_arn`)."
  type        = string
}

variable "config_sha256" {
  description = "sha256 of the configuration: a new one redeploys the tasks, which read it once at start."
  type        = string
}

variable "amqp_url" {
  description = "AMQP URL of the broker, with credentials."
  type        = string
  sensitive   = true
}

variable "redis_url" {
  description = "Redis URL of the state store, with credentials."
  type        = string
  sensitive   = true
}

variable "kms_key_arn" {
  description = "KMS key of the configuration parameter, the URL parameters and the log group."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the tasks (next to the broker, Redis and the instances)."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the tasks."
  type        = list(string)
}

variable "log_retention_days" {
  description = "Retention of the worker's log group, in days."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
