variable "name_prefix" {
  description = "Prefix of every name this module creates (functions `<prefix>-scaler`, ...)."
  type        = string
  default     = "scale0"

  validation {
    condition     = can(regex("^[A-Za-z0-9-]{1,32}$", var.name_prefix))
    error_message = "name_prefix must be 1-32 characters of A-Z a-z 0-9 -."
  }
}

variable "config_toml" {
  description = "The scale0 configuration (module `config`'s `config_toml`), stored as a SecureString SSM parameter the functions read at cold start."
  type        = string
}

variable "config_parameter_name" {
  description = "Name of the SSM parameter holding the configuration."
  type        = string
  default     = "/scale0/config"

  validation {
    condition     = startswith(var.config_parameter_name, "/")
    error_message = "config_parameter_name must be a path starting with '/'."
  }
}

variable "lambda_zips" {
  description = "Paths of the four function packages (`make lambda-zips` builds them in target/lambda/): a zip with `bootstrap` at its root each."
  type = object({
    scaler    = string
    scheduler = string
    lifecycle = string
    budget    = string
  })
}

variable "architecture" {
  description = "Instruction set the zips were built for: x86_64 or arm64."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be \"x86_64\" or \"arm64\"."
  }
}

variable "memory_mb" {
  description = "Memory of each function, in MB (CPU grows with it)."
  type        = number
  default     = 256

  validation {
    condition     = var.memory_mb >= 128 && var.memory_mb <= 10240
    error_message = "memory_mb must be between 128 and 10240."
  }
}

variable "timeout_seconds" {
  description = "Timeout of each function, in seconds: a scaler run probes instances and calls Auto Scaling."
  type        = number
  default     = 60

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 900
    error_message = "timeout_seconds must be between 1 and 900."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrency of each function. Concurrent scaler runs are safe (each commit is fenced in Redis) but only cost calls."
  type        = number
  default     = 10
}

variable "log_retention_days" {
  description = "Retention of the functions' log groups, in days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs offers (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "log_level" {
  description = "RUST_LOG of the functions."
  type        = string
  default     = "info"
}

variable "tick_schedule_expression" {
  description = "How often the scaler ticks (probes, reconcile, decisions) without other events."
  type        = string
  default     = "rate(1 minute)"

  validation {
    condition     = can(regex("^rate\\((1 minute|[1-9][0-9]* minutes)\\)$", var.tick_schedule_expression))
    error_message = "tick_schedule_expression must be rate(1 minute) or rate(N minutes)."
  }
}

variable "subnet_ids" {
  description = "Private subnets of the functions: they reach Redis, the broker and the instances there, and AWS APIs (Auto Scaling, SSM) through a NAT gateway or VPC endpoints."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids: at least one subnet is required."
  }
}

variable "security_group_ids" {
  description = "Security groups of the functions."
  type        = list(string)
}

variable "redis_url" {
  description = "Redis URL of the state store (`rediss://default:<token>@host:6379`, module `state`'s `redis_url`)."
  type        = string
  sensitive   = true
}

variable "amqp_url" {
  description = "AMQP URL of the broker (`amqps://user:password@host:5671`, module `broker`'s `amqp_url`)."
  type        = string
  sensitive   = true
}

variable "broker_arn" {
  description = "ARN of the Amazon MQ for RabbitMQ broker whose `scale0.control` queue feeds the scaler."
  type        = string
}

variable "broker_credentials_secret_arn" {
  description = "Secrets Manager secret with the broker's `username` and `password` (JSON), for the event source mapping."
  type        = string
}

variable "broker_virtual_host" {
  description = "Virtual host of scale0's queues on the broker."
  type        = string
  default     = "/"
}

variable "control_batch_size" {
  description = "Control events per scaler invocation from `scale0.control`."
  type        = number
  default     = 100

  validation {
    condition     = var.control_batch_size >= 1 && var.control_batch_size <= 10000
    error_message = "control_batch_size must be between 1 and 10000."
  }
}

variable "asg_names" {
  description = "Auto Scaling groups of every pool (module `config`'s `asg_names`): lifecycle events are routed for these."
  type        = list(string)
}

variable "asg_arns" {
  description = "ARNs of the same groups (module gpu-pool's `asg_arn`): the functions' Auto Scaling permissions are scoped to them."
  type        = list(string)
}

variable "deployment_names" {
  description = "Configured deployments: alarm state changes of alarms named `scale0-<deployment>-...` wake the scaler."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key for the parameter, the functions' environment and log groups; null creates one with module `kms` (its policy also lets CloudWatch Logs and AWS Budgets use it)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
