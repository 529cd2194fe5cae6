# The EC2 service quotas the configuration counts vCPUs against. scale0 plans within the
# configured `vcpus`; this module makes the account's quota at least that (an increase
# request where it is lower: AWS may take days to grant one) or, with
# request_increases = false, reads the current value so outputs can be compared.

resource "aws_servicequotas_service_quota" "this" {
  for_each = var.request_increases ? var.quotas : {}

  service_code = "ec2"
  quota_code   = each.value.code
  value        = each.value.vcpus
}

data "aws_servicequotas_service_quota" "current" {
  for_each = var.request_increases ? {} : var.quotas

  service_code = "ec2"
  quota_code   = each.value.code
}
