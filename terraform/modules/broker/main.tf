# Amazon MQ for RabbitMQ: the requests, the replies and `scale0.control`. Optional: an
# existing broker is passed to control-plane and worker instead (examples/minimal).
# The queue worker declares scale0's exchanges and queues itself.

resource "aws_mq_broker" "this" {
  # checkov:skip=CKV_AWS_209:Amazon MQ for RabbitMQ encrypts at rest only with an AWS-owned key; a customer key is supported for ActiveMQ brokers only.
  # checkov:skip=CKV_AWS_208:RabbitMQ engine versions here are pinned by the deployer (engine_version), and minor upgrades are automatic.
  broker_name                = var.name
  engine_type                = "RabbitMQ"
  engine_version             = var.engine_version
  host_instance_type         = var.host_instance_type
  deployment_mode            = var.deployment_mode
  subnet_ids                 = var.subnet_ids
  security_groups            = var.security_group_ids
  publicly_accessible        = false
  auto_minor_version_upgrade = true

  user {
    username = var.username
    password = var.password
  }

  logs {
    general = true
  }

  maintenance_window_start_time {
    day_of_week = var.maintenance_window.day_of_week
    time_of_day = var.maintenance_window.time_of_day
    time_zone   = "UTC"
  }

  tags = var.tags
}

# The event source mapping authenticates with a secret of this shape.
resource "aws_secretsmanager_secret" "credentials" {
  # checkov:skip=CKV2_AWS_57:The password lives in the broker too; rotating it needs a function that also updates the broker, the worker and the producers, which is the deployer's procedure.
  name_prefix = "${var.name}-broker-"
  description = "scale0: Amazon MQ credentials for the scaler's event source mapping"
  kms_key_id  = var.kms_key_arn
  tags        = var.tags
}

resource "aws_secretsmanager_secret_version" "credentials" {
  secret_id     = aws_secretsmanager_secret.credentials.id
  secret_string = jsonencode({ username = var.username, password = var.password })
}

locals {
  # amqps://b-....mq.<region>.amazonaws.com:5671
  endpoint = aws_mq_broker.this.instances[0].endpoints[0]
  host     = trimprefix(local.endpoint, "amqps://")
}
