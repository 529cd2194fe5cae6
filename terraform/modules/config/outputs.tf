output "config_toml" {
  description = "The configuration file, checked against its rendered hash."
  value       = var.config_toml
}

output "deployment_names" {
  description = "Names of the configured deployments."
  value       = keys(var.deployments)
}

output "pools" {
  description = "Every pool, keyed `<deployment>/<pool>`, with its deployment, name and lifecycle hook heartbeats."
  value       = local.pools
}

output "asg_names" {
  description = "The Auto Scaling group name of every pool."
  value       = [for p in values(local.pools) : p.asg_name]
}

output "schedules" {
  description = "Every scheduled action, keyed `<deployment>/<action>`, with its EventBridge Scheduler schedule name."
  value       = local.schedules
}

output "budgets" {
  description = "Every budget, by name."
  value       = var.budgets
}

output "aws_budgets" {
  description = "The daily and monthly budgets (AWS Budgets has no rolling period), with their AWS time unit."
  value       = local.aws_budgets
}

output "quotas" {
  description = "Every service quota, by name."
  value       = var.quotas
}
