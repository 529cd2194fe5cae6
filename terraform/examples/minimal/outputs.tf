output "function_names" {
  description = "The four functions."
  value       = module.control_plane.function_names
}

output "asg_names" {
  description = "Auto Scaling group of every pool, keyed `<deployment>/<pool>`."
  value       = { for k, p in module.pools : k => p.asg_name }
}
