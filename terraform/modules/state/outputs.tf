output "primary_endpoint" {
  description = "Primary endpoint address."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "redis_url" {
  description = "Redis URL with the AUTH token, for the functions and the worker (`rediss://`: TLS)."
  value       = "rediss://default:${urlencode(var.auth_token)}@${aws_elasticache_replication_group.this.primary_endpoint_address}:6379"
  sensitive   = true
}
