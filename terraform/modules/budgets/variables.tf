variable "budgets" {
  description = "The daily and monthly budgets, as module `config` outputs them (`aws_budgets`)."
  type = map(object({
    deployments      = optional(list(string))
    time_unit        = string
    limit_usd        = number
    alert_thresholds = list(number)
  }))
}

variable "function_name" {
  description = "Name of the scale0-budget function subscribed to the notifications topic."
  type        = string
}

variable "function_arn" {
  description = "ARN of the scale0-budget function."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the notifications topic; its policy must let budgets.amazonaws.com use it (module control-plane's key does)."
  type        = string
}

variable "tag_key" {
  description = "Cost allocation tag that scopes a budget to its deployments (module gpu-pool tags instances with it); activate it in the Billing console."
  type        = string
  default     = "scale0:deployment"
}

variable "tags" {
  description = "Tags for the topic and the budgets."
  type        = map(string)
  default     = {}
}
