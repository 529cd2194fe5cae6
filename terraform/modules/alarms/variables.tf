variable "deployment_names" {
  description = "Configured deployments (module `config`'s `deployment_names`): one queue-depth alarm each."
  type        = list(string)
}

variable "broker_name" {
  description = "Amazon MQ broker name (the metrics' Broker dimension)."
  type        = string
}

variable "virtual_host" {
  description = "Virtual host of scale0's queues."
  type        = string
  default     = "/"
}

variable "queue_depth_threshold" {
  description = "Messages in a deployment's queue (ready and held unacked) above which its alarm fires and wakes the scaler."
  type        = number
  default     = 0
}

variable "worker_cluster_name" {
  description = "ECS cluster of the worker (module worker); null for no worker alarms."
  type        = string
  default     = null
}

variable "worker_service_name" {
  description = "ECS service of the worker."
  type        = string
  default     = null
}

variable "worker_cpu_threshold_percent" {
  description = "Worker CPU above which the operators' alarm fires."
  type        = number
  default     = 80
}

variable "dead_letter_queue_name" {
  description = "SQS queue of failed invocations (control-plane's `dead_letter_queue_name`)."
  type        = string
}

variable "operator_topic_arns" {
  description = "SNS topics notified of the operators' alarms (no consumer on a queue, worker CPU, dead letters)."
  type        = list(string)
  default     = []
}
