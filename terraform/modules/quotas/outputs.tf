output "values" {
  description = "The account's value of every quota (the requested value where an increase is pending), keyed by the scale0 name."
  value = merge(
    { for k, q in aws_servicequotas_service_quota.this : k => q.value },
    { for k, q in data.aws_servicequotas_service_quota.current : k => q.value },
  )
}

output "short_of_configuration" {
  description = "Quotas whose current account value is below the configured vcpus (only with request_increases = false)."
  value       = [for k, q in data.aws_servicequotas_service_quota.current : k if q.value < var.quotas[k].vcpus]
}
