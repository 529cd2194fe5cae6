# One key for everything scale0 stores: the configuration, the URLs, logs, the budget
# topic, the broker secret, Redis at rest and the instances' volumes (module `kms`, the
# same policy the control plane gives the key it creates when it is passed none).

module "kms" {
  source = "../../modules/kms"

  name                = "scale0"
  autoscaling_volumes = true
}

moved {
  from = aws_kms_key.scale0
  to   = module.kms.aws_kms_key.this
}

moved {
  from = aws_kms_alias.scale0
  to   = module.kms.aws_kms_alias.this
}
