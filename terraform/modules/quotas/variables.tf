variable "quotas" {
  description = "Service quotas by name, as module `config` outputs them (`quotas`)."
  type = map(object({
    code  = string
    vcpus = number
  }))
}

variable "request_increases" {
  description = "Whether Terraform requests a quota increase to each configured value (`aws_servicequotas_service_quota`). false only reads the current values, so a plan shows where the account and the configuration disagree."
  type        = bool
  default     = true
}
