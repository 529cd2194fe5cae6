variable "schedules" {
  description = "Scheduled actions keyed `<deployment>/<action>`, as module `config` outputs them (`schedules`)."
  type = map(object({
    deployment = string
    action     = string
    name       = string
    expression = string
    time_zone  = string
    start      = optional(string)
    end        = optional(string)
  }))
}

variable "function_arn" {
  description = "ARN of the scale0-scheduler function the schedules invoke."
  type        = string
}

variable "group_name" {
  description = "Name of the EventBridge Scheduler schedule group holding scale0's schedules."
  type        = string
  default     = "scale0"
}

variable "dead_letter_queue_arn" {
  description = "SQS queue that receives invocations the Scheduler could not deliver after its retries."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the schedules' input; null for an AWS-owned key."
  type        = string
  default     = null
}

variable "maximum_retry_attempts" {
  description = "Retries of a failed invocation (the scaler's tick covers a missed one anyway)."
  type        = number
  default     = 3
}

variable "tags" {
  description = "Tags for the schedule group and the role."
  type        = map(string)
  default     = {}
}
