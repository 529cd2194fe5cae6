variable "region" {
  description = "AWS region to deploy in."
  type        = string
  default     = "eu-west-2"
}

variable "private_subnet_ids" {
  description = "Private subnets of the functions, the worker and the instances."
  type        = list(string)
}

variable "functions_security_group_ids" {
  description = "Security groups of the functions (reaching the broker, Redis, the instances and AWS APIs)."
  type        = list(string)
}

variable "worker_security_group_ids" {
  description = "Security groups of the queue worker."
  type        = list(string)
}

variable "instance_security_group_ids" {
  description = "Security groups of the GPU instances (the model server's port open to the functions and the worker)."
  type        = list(string)
}

variable "gpu_image_id" {
  description = "AMI of the GPU instances."
  type        = string
}

variable "model_server_user_data" {
  description = "Start-up script of the model server."
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

variable "amqp_url" {
  description = "AMQP URL of the existing broker, with credentials."
  type        = string
  sensitive   = true
}

variable "broker_arn" {
  description = "ARN of the existing Amazon MQ for RabbitMQ broker."
  type        = string
}

variable "broker_credentials_secret_arn" {
  description = "Secrets Manager secret with the broker's username and password (JSON)."
  type        = string
}

variable "redis_url" {
  description = "URL of the existing Redis, with credentials (rediss:// for TLS)."
  type        = string
  sensitive   = true
}
