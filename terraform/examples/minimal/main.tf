# One deployment with one on-demand pool, on an existing broker and Redis: the
# configuration, the pool's group, the control plane and the queue worker.

locals {
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
  user_data          = var.model_server_user_data
  subnet_ids         = var.private_subnet_ids
  security_group_ids = var.instance_security_group_ids
}

module "control_plane" {
  source = "../../modules/control-plane"

  config_toml                   = module.config.config_toml
  lambda_zips                   = local.zips
  subnet_ids                    = var.private_subnet_ids
  security_group_ids            = var.functions_security_group_ids
  redis_url                     = var.redis_url
  amqp_url                      = var.amqp_url
  broker_arn                    = var.broker_arn
  broker_credentials_secret_arn = var.broker_credentials_secret_arn
  asg_names                     = module.config.asg_names
  asg_arns                      = [for p in module.pools : p.asg_arn]
  deployment_names              = module.config.deployment_names
}

module "worker" {
  source = "../../modules/worker"

  image                = var.worker_image
  desired_count        = 1
  config_parameter_arn = module.control_plane.config_parameter_arn
  config_sha256        = sha256(module.config.config_toml)
  amqp_url             = var.amqp_url
  redis_url            = var.redis_url
  kms_key_arn          = module.control_plane.kms_key_arn
  subnet_ids           = var.private_subnet_ids
  security_group_ids   = var.worker_security_group_ids
}
