# Who talks to whom: the functions and the worker reach the broker (AMQPS), Redis (TLS)
# and the instances' model server; the functions and the worker reach AWS APIs over
# HTTPS (through the VPC's NAT gateway or endpoints).

resource "aws_security_group" "functions" {
  name_prefix = "scale0-functions-"
  description = "scale0 functions"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "worker" {
  # checkov:skip=CKV2_AWS_5:Attached to the worker's ECS service through module.worker (security_group_ids, network_configuration); checkov's graph does not follow the list into the module.
  name_prefix = "scale0-worker-"
  description = "scale0 queue workers"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "instances" {
  name_prefix = "scale0-instances-"
  description = "scale0 GPU instances"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "broker" {
  name_prefix = "scale0-broker-"
  description = "scale0 broker"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "redis" {
  name_prefix = "scale0-redis-"
  description = "scale0 state"
  vpc_id      = var.vpc_id
}

locals {
  clients = {
    functions = aws_security_group.functions.id
    worker    = aws_security_group.worker.id
  }
  # Where each client may connect inside the VPC.
  client_ports = { broker = 5671, redis = 6379, instances = 8000 }
  servers = {
    broker    = aws_security_group.broker.id
    redis     = aws_security_group.redis.id
    instances = aws_security_group.instances.id
  }
  client_server = merge([for c, cid in local.clients : {
    for s, sid in local.servers : "${c}-${s}" => { client = cid, server = sid, port = local.client_ports[s], name = "${c} to ${s}" }
  }]...)
}

resource "aws_vpc_security_group_ingress_rule" "client_server" {
  for_each = local.client_server

  security_group_id            = each.value.server
  referenced_security_group_id = each.value.client
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = each.value.name
}

resource "aws_vpc_security_group_egress_rule" "client_server" {
  for_each = local.client_server

  security_group_id            = each.value.client
  referenced_security_group_id = each.value.server
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = each.value.name
}

resource "aws_vpc_security_group_egress_rule" "https" {
  for_each = merge(local.clients, { instances = aws_security_group.instances.id })

  security_group_id = each.value
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "AWS APIs, ECR, model weights over HTTPS"
}

resource "aws_vpc_security_group_ingress_rule" "producers" {
  for_each = toset(var.producer_security_group_ids)

  security_group_id            = aws_security_group.broker.id
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 5671
  to_port                      = 5671
  description                  = "producers to the broker"
}

# Amazon MQ's event source mapping polls the broker from the scaler's network
# interfaces, in the functions' security group (covered above).
