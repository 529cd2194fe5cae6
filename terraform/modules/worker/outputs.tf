output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "Name of the ECS service."
  value       = aws_ecs_service.this.name
}

output "task_role_arn" {
  description = "ARN of the task role (no policy: the worker calls no AWS API)."
  value       = aws_iam_role.task.arn
}

output "log_group_name" {
  description = "Log group of the worker."
  value       = aws_cloudwatch_log_group.this.name
}
