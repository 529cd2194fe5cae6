# Provider-free on purpose: this module only checks the rendered configuration
# (variables.tf) and reshapes it for the modules that create resources, so its rules can
# be planned and tested where no AWS provider is installed.

locals {
  # Durations are the TOML's strings ("1m30s", "250ms"); Terraform needs seconds.
  unit_seconds = { ms = 0.001, s = 1, m = 60, h = 3600, d = 86400 }
  drain_seconds = {
    for name, d in var.deployments :
    name => ceil(sum([for m in regexall("([0-9]+)(ms|s|m|h|d)", d.drain_timeout) : tonumber(m[0]) * local.unit_seconds[m[1]]]))
  }

  pools = merge([for dn, d in var.deployments : {
    for pn, p in d.pools : "${dn}/${pn}" => merge(p, {
      deployment = dn
      pool       = pn
      # The hooks the lifecycle function answers, as AsgProvider::install_lifecycle_hooks
      # puts them: launching is completed as soon as the instance is registered;
      # terminating holds the instance drain_timeout plus a minute so it can drain.
      launching_heartbeat_seconds   = 300
      terminating_heartbeat_seconds = min(7200, local.drain_seconds[dn] + 60)
    })
  }]...)

  schedules = merge([for dn, d in var.deployments : {
    for an, s in d.schedules : "${dn}/${an}" => merge(s, {
      deployment = dn
      action     = an
      name       = "${dn}-${an}"
    })
  }]...)

  # AWS Budgets has daily and monthly periods; a rolling window exists only in scale0's
  # own ledger, which enforces every budget anyway.
  aws_budgets = {
    for name, b in var.budgets : name => merge(b, { time_unit = upper(b.period) })
    if b.period != "rolling"
  }
}
