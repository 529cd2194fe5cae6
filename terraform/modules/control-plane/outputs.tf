output "function_arns" {
  description = "ARN of each function, keyed scaler, scheduler, lifecycle, budget."
  value       = { for k, f in aws_lambda_function.this : k => f.arn }
}

output "function_names" {
  description = "Name of each function, keyed scaler, scheduler, lifecycle, budget."
  value       = { for k, f in aws_lambda_function.this : k => f.function_name }
}

output "role_arns" {
  description = "ARN of each function's role."
  value       = { for k, r in aws_iam_role.function : k => r.arn }
}

output "config_parameter_name" {
  description = "Name of the SSM parameter holding the configuration."
  value       = aws_ssm_parameter.config.name
}

output "config_parameter_arn" {
  description = "ARN of the SSM parameter holding the configuration."
  value       = aws_ssm_parameter.config.arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key of the parameter, the environments and the logs (created or passed in)."
  value       = local.kms_key_arn
}

output "dead_letter_queue_arn" {
  description = "ARN of the SQS queue of failed asynchronous invocations and undeliverable events."
  value       = aws_sqs_queue.dead_letters.arn
}

output "dead_letter_queue_name" {
  description = "Name of the same queue (module alarms watches it)."
  value       = aws_sqs_queue.dead_letters.name
}

output "log_group_names" {
  description = "Log group of each function."
  value       = { for k, g in aws_cloudwatch_log_group.function : k => g.name }
}
