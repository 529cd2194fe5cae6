output "function_names" {
  description = "The four functions."
  value       = module.control_plane.function_names
}

output "asg_names" {
  description = "Auto Scaling group of every pool, keyed `<deployment>/<pool>`."
  value       = { for k, p in module.pools : k => p.asg_name }
}

output "schedule_arns" {
  description = "EventBridge Scheduler schedule of every scheduled action."
  value       = module.schedules.schedule_arns
}

output "budget_names" {
  description = "AWS Budgets of the daily and monthly budgets."
  value       = module.budgets.budget_names
}

output "quota_values" {
  description = "The account's GPU quotas."
  value       = module.quotas.values
}

output "broker_endpoint" {
  description = "AMQPS endpoint producers publish to (exchange scale0.requests)."
  value       = module.broker.endpoint
}

output "config_parameter_name" {
  description = "SSM parameter of the configuration."
  value       = module.control_plane.config_parameter_name
}
