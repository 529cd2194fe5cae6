variable "region" {
  description = "AWS region to deploy in."
  type        = string
  default     = "eu-west-2"
}

variable "vpc_id" {
  description = "VPC of everything (private subnets with a NAT gateway or VPC endpoints for Auto Scaling, SSM, Logs, ECR)."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets in at least two zones (the broker cluster needs three)."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "private_subnet_ids: at least two subnets, in different zones."
  }
}

variable "gpu_image_id" {
  description = "AMI of the GPU instances (e.g. an AWS Deep Learning AMI with the model server)."
  type        = string
}

variable "worker_image" {
  description = "Container image of the queue worker."
  type        = string
}

variable "lambda_zip_dir" {
  description = "Directory of the function zips `make lambda-zips` builds."
  type        = string
  default     = "../../../target/lambda"
}

variable "broker_password" {
  description = "Password of the broker's scale0 user."
  type        = string
  sensitive   = true
}

variable "redis_auth_token" {
  description = "Redis AUTH token."
  type        = string
  sensitive   = true
}

variable "producer_security_group_ids" {
  description = "Security groups of the producers that publish requests to the broker."
  type        = list(string)
  default     = []
}

variable "operator_topic_arns" {
  description = "SNS topics for the operators' alarms."
  type        = list(string)
  default     = []
}
