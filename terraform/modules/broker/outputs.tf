output "broker_arn" {
  description = "ARN of the broker (control-plane's `broker_arn`)."
  value       = aws_mq_broker.this.arn
}

output "broker_name" {
  description = "Name of the broker (CloudWatch metrics' Broker dimension)."
  value       = aws_mq_broker.this.broker_name
}

output "credentials_secret_arn" {
  description = "ARN of the secret with the broker credentials (control-plane's `broker_credentials_secret_arn`)."
  value       = aws_secretsmanager_secret.credentials.arn
}

output "endpoint" {
  description = "AMQPS endpoint of the broker."
  value       = local.endpoint
}

output "amqp_url" {
  description = "AMQP URL with credentials, for the functions and the worker."
  value       = "amqps://${urlencode(var.username)}:${urlencode(var.password)}@${local.host}"
  sensitive   = true
}
