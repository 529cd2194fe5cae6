output "topic_arn" {
  description = "ARN of the SNS topic AWS Budgets notifies."
  value       = aws_sns_topic.budgets.arn
}

output "budget_names" {
  description = "AWS name of every budget (`scale0-<name>`), keyed by the scale0 name."
  value       = { for k, b in aws_budgets_budget.this : k => b.name }
}
