# Every module: the configuration's deployments, pools (Spot and on-demand), office-hours
# schedules in London time, a monthly budget and the GPU quotas, with a new broker,
# Redis and the queue worker on Fargate.

locals {
  # Rendered from scale0.toml by `scale0 terraform-vars`; module config checks the two
  # still agree.
  rendered = jsondecode(file("${path.module}/scale0.rendered.json"))
  zips     = { for f in ["scaler", "scheduler", "lifecycle", "budget"] : f => "${var.lambda_zip_dir}/scale0-${f}.zip" }
}

module "config" {
  source = "../../modules/config"

  config_toml   = file("${path.module}/scale0.toml")
  config_sha256 = local.rendered.config_sha256
  provider_kind = local.rendered.provider_kind
  deployments   = local.rendered.deployments
  budgets       = local.rendered.budgets
  quotas        = local.rendered.quotas
}

module "pools" {
  source   = "../../modules/gpu-pool"
  for_each = module.config.pools

  pool               = each.value
  image_id           = var.gpu_image_id
  user_data          = templatefile("${path.module}/model-server.sh.tftpl", { deployment = each.value.deployment })
  subnet_ids         = var.private_subnet_ids
  security_group_ids = [aws_security_group.instances.id]
  ebs_kms_key_arn    = module.kms.key_arn
}

module "broker" {
  source = "../../modules/broker"

  subnet_ids         = var.private_subnet_ids
  security_group_ids = [aws_security_group.broker.id]
  password           = var.broker_password
  kms_key_arn        = module.kms.key_arn
}

module "state" {
  source = "../../modules/state"

  subnet_ids         = var.private_subnet_ids
  security_group_ids = [aws_security_group.redis.id]
  auth_token         = var.redis_auth_token
  kms_key_arn        = module.kms.key_arn
}

module "control_plane" {
  source = "../../modules/control-plane"

  config_toml                   = module.config.config_toml
  lambda_zips                   = local.zips
  subnet_ids                    = var.private_subnet_ids
  security_group_ids            = [aws_security_group.functions.id]
  redis_url                     = module.state.redis_url
  amqp_url                      = module.broker.amqp_url
  broker_arn                    = module.broker.broker_arn
  broker_credentials_secret_arn = module.broker.credentials_secret_arn
  asg_names                     = module.config.asg_names
  asg_arns                      = [for p in module.pools : p.asg_arn]
  deployment_names              = module.config.deployment_names
  kms_key_arn                   = module.kms.key_arn
}

module "schedules" {
  source = "../../modules/schedules"

  schedules             = module.config.schedules
  function_arn          = module.control_plane.function_arns["scheduler"]
  dead_letter_queue_arn = module.control_plane.dead_letter_queue_arn
  kms_key_arn           = module.kms.key_arn
}

module "budgets" {
  source = "../../modules/budgets"

  budgets       = module.config.aws_budgets
  function_name = module.control_plane.function_names["budget"]
  function_arn  = module.control_plane.function_arns["budget"]
  kms_key_arn   = module.kms.key_arn
}

module "quotas" {
  source = "../../modules/quotas"

  quotas = module.config.quotas
}

module "worker" {
  source = "../../modules/worker"

  image                = var.worker_image
  config_parameter_arn = module.control_plane.config_parameter_arn
  config_sha256        = sha256(module.config.config_toml)
  amqp_url             = module.broker.amqp_url
  redis_url            = module.state.redis_url
  kms_key_arn          = module.kms.key_arn
  subnet_ids           = var.private_subnet_ids
  security_group_ids   = [aws_security_group.worker.id]
}

module "alarms" {
  source = "../../modules/alarms"

  deployment_names       = module.config.deployment_names
  broker_name            = module.broker.broker_name
  worker_cluster_name    = module.worker.cluster_name
  worker_service_name    = module.worker.service_name
  dead_letter_queue_name = module.control_plane.dead_letter_queue_name
  operator_topic_arns    = var.operator_topic_arns
}
