# ElastiCache for Redis OSS: scale0's state (registry, decisions, leases, the spend
# ledger), with TLS in transit, AUTH and encryption at rest. Optional: an existing Redis
# is passed to control-plane and worker instead. ElastiCache replicates asynchronously
# and keeps no append-only file, so a failover can lose the last writes (README,
# "Operating it"); MemoryDB is the choice where a duplicate reply is unacceptable.

resource "aws_elasticache_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
  tags       = var.tags
}

resource "aws_elasticache_replication_group" "this" {
  # checkov:skip=CKV2_AWS_50:Automatic failover and Multi-AZ are on whenever there is a replica (replicas > 0, default 1), which checkov does not evaluate; replicas = 0 is a single node with nothing to fail over to, a cost the deployer chooses.
  replication_group_id       = var.name
  description                = "scale0 state"
  engine                     = "redis"
  engine_version             = var.engine_version
  node_type                  = var.node_type
  port                       = 6379
  num_cache_clusters         = 1 + var.replicas
  automatic_failover_enabled = var.replicas > 0
  multi_az_enabled           = var.replicas > 0
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = var.security_group_ids
  transit_encryption_enabled = true
  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  auth_token                 = var.auth_token
  snapshot_retention_limit   = var.snapshot_retention_days
  auto_minor_version_upgrade = true
  apply_immediately          = false
  tags                       = var.tags
}
