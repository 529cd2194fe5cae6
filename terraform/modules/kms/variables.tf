variable "name" {
  description = "Name of the key's alias (`alias/<name>`)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9/_-]+$", var.name)) && !startswith(var.name, "aws/")
    error_message = "name must be letters, digits, '/', '_' or '-', and must not start with \"aws/\"."
  }
}

variable "description" {
  description = "Description of the key."
  type        = string
  default     = "scale0"
}

variable "autoscaling_volumes" {
  description = "Let the Auto Scaling service-linked role use the key, so the pools' launch templates can encrypt their volumes with it."
  type        = bool
  default     = false
}

variable "deletion_window_in_days" {
  description = "Days between scheduling the key's deletion and its deletion (7 to 30)."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "tags" {
  description = "Tags for the key."
  type        = map(string)
  default     = {}
}
