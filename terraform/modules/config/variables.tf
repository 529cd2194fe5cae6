# The scale0 configuration as Terraform sees it: what `scale0 terraform-vars` renders
# from the TOML. Each validation mirrors a rule of core/src/config.rs (or an AWS rule
# the TOML cannot know), so a broken value fails the plan with the same complaint the
# Rust loader makes, before any resource is touched. The cases are tested against both
# sides in terraform/render/tests/validation.rs.

variable "config_toml" {
  description = "The scale0 configuration file (TOML) itself: stored in SSM for the functions and the worker."
  type        = string
}

variable "config_sha256" {
  description = "sha256 of the TOML the other inputs were rendered from (`scale0 terraform-vars` writes it); must equal sha256(config_toml)."
  type        = string

  validation {
    condition     = var.config_sha256 == sha256(var.config_toml)
    error_message = "config_sha256 is not the sha256 of config_toml: the TOML changed after it was rendered. Run `scale0 terraform-vars <config.toml> > scale0.tfvars.json` again."
  }
}

variable "provider_kind" {
  description = "The configuration's `provider.kind`; these modules deploy `aws-asg`."
  type        = string

  validation {
    condition     = var.provider_kind == "aws-asg"
    error_message = "provider.kind must be \"aws-asg\" for a deployment to AWS (the functions drive one Auto Scaling group per pool)."
  }
}

variable "deployments" {
  description = "Deployments by name, with their pools and scheduled actions, as rendered from the TOML."
  type = map(object({
    drain_timeout  = string
    on_demand_base = optional(number, 0)
    pools = map(object({
      asg_name           = string
      instance_type      = string
      capacity_type      = optional(string, "on-demand")
      min_instances      = optional(number, 0)
      max_instances      = number
      vcpus_per_instance = optional(number)
      warm_pool_size     = optional(number, 0)
      boot_time          = string
    }))
    schedules = optional(map(object({
      expression    = string
      time_zone     = optional(string, "UTC")
      min_instances = optional(number)
      max_instances = optional(number)
      start         = optional(string)
      end           = optional(string)
    })), {})
  }))

  validation {
    condition     = length(var.deployments) > 0
    error_message = "deployments: at least one deployment is required."
  }

  validation {
    condition     = alltrue([for name in keys(var.deployments) : can(regex("^[a-z0-9_-]{1,64}$", name))])
    error_message = "deployments: every deployment name must be 1-64 characters of a-z, 0-9, '-' or '_' (it becomes a queue name and a Redis key part)."
  }

  validation {
    condition     = alltrue([for d in values(var.deployments) : length(d.pools) > 0])
    error_message = "deployments: every deployment needs at least one pool."
  }

  validation {
    condition     = alltrue(flatten([for d in values(var.deployments) : [for name in keys(d.pools) : can(regex("^[a-z0-9_-]{1,64}$", name))]]))
    error_message = "deployments: every pool name must be 1-64 characters of a-z, 0-9, '-' or '_'."
  }

  validation {
    condition     = alltrue(flatten([for d in values(var.deployments) : [for p in values(d.pools) : p.max_instances >= 1 && p.min_instances >= 0 && p.min_instances <= p.max_instances]]))
    error_message = "deployments: every pool needs max_instances >= 1 and min_instances <= max_instances."
  }

  validation {
    condition     = alltrue(flatten([for d in values(var.deployments) : [for p in values(d.pools) : p.instance_type != null && p.instance_type != ""]]))
    error_message = "deployments: every pool needs an instance_type in AWS (its launch template's type)."
  }

  validation {
    condition     = alltrue(flatten([for d in values(var.deployments) : [for p in values(d.pools) : contains(["on-demand", "spot"], p.capacity_type)]]))
    error_message = "deployments: a pool's capacity_type is \"on-demand\" or \"spot\"."
  }

  validation {
    condition = alltrue(flatten([for d in values(var.deployments) : concat(
      [can(regex("^([0-9]+(ms|s|m|h|d))+$", d.drain_timeout)) && can(regex("[1-9]", d.drain_timeout))],
      [for p in values(d.pools) : can(regex("^([0-9]+(ms|s|m|h|d))+$", p.boot_time)) && can(regex("[1-9]", p.boot_time))],
    )]))
    error_message = "deployments: durations (drain_timeout, boot_time) are positive and written with units, e.g. \"90s\", \"5m\", \"1h30m\" (a bare number is refused)."
  }

  validation {
    condition     = alltrue(flatten([for d in values(var.deployments) : [for p in values(d.pools) : can(regex("^[A-Za-z0-9_.:/-]{1,255}$", p.asg_name))]]))
    error_message = "deployments: an asg_name is 1-255 characters of A-Z a-z 0-9 - _ . : /."
  }

  validation {
    condition     = length(flatten([for d in values(var.deployments) : [for p in values(d.pools) : p.asg_name]])) == length(distinct(flatten([for d in values(var.deployments) : [for p in values(d.pools) : p.asg_name]])))
    error_message = "deployments: asg_name must be unique over all pools (lifecycle events find their pool by it)."
  }

  validation {
    condition     = alltrue(flatten([for d in values(var.deployments) : [for p in values(d.pools) : p.warm_pool_size == 0 || (p.capacity_type == "on-demand" && p.warm_pool_size <= p.max_instances)]]))
    error_message = "deployments: a warm pool needs an on-demand pool (EC2 Auto Scaling cannot keep one behind Spot) and at most max_instances instances."
  }

  validation {
    condition     = alltrue([for d in values(var.deployments) : d.on_demand_base <= sum(concat([0], [for p in values(d.pools) : p.max_instances if p.capacity_type == "on-demand"]))])
    error_message = "deployments: on_demand_base exceeds the on-demand pools' total max_instances."
  }

  validation {
    condition     = alltrue(flatten([for dn, d in var.deployments : [for an in keys(d.schedules) : can(regex("^[0-9A-Za-z_.-]+$", an)) && length("${dn}-${an}") <= 64]]))
    error_message = "deployments: a scheduled action's name must not be empty, and `<deployment>-<action>` is the EventBridge Scheduler schedule's name: at most 64 characters of 0-9 A-Z a-z - _ ."
  }

  validation {
    condition = alltrue(flatten([for d in values(var.deployments) : [for s in values(d.schedules) : (
      can(regex("^cron\\((?:[0-9*,/-]+) (?:[0-9*,/-]+) (?:[0-9*,/?LW-]+) (?:(?:[0-9]+|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|[*,/-])+) (?:(?:[0-9]+|SUN|MON|TUE|WED|THU|FRI|SAT|[*,/?L#-])+) (?:[0-9*,/-]+)\\)$", s.expression))
      || can(regex("^rate\\((?:1 (?:minute|hour|day)|(?:[2-9]|[1-9][0-9]+) (?:minutes|hours|days))\\)$", s.expression))
      || can(regex("^at\\([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\)$", s.expression))
    )]]))
    error_message = "deployments: a schedule expression is EventBridge Scheduler syntax: cron(minutes hours day-of-month month day-of-week year), rate(5 minutes) (singular for 1) or at(2026-12-24T18:00:00)."
  }

  validation {
    condition     = alltrue(flatten([for d in values(var.deployments) : [for s in values(d.schedules) : contains(jsondecode(file("${path.module}/time_zones.json")), s.time_zone)]]))
    error_message = "deployments: a scheduled action's time_zone must be an IANA time zone (e.g. \"Europe/London\")."
  }

  validation {
    condition = alltrue(flatten([for d in values(var.deployments) : [for s in values(d.schedules) : (
      (s.min_instances != null || s.max_instances != null)
      && (s.min_instances == null || s.max_instances == null || try(s.min_instances <= s.max_instances, false))
      && (s.min_instances == null || try(s.min_instances <= sum([for p in values(d.pools) : p.max_instances]), false))
    )]]))
    error_message = "deployments: a scheduled action sets min_instances and/or max_instances, with min <= max and min at most the pools' total max_instances."
  }

  validation {
    condition = alltrue(flatten([for d in values(var.deployments) : [for s in values(d.schedules) : (
      (s.start == null || can(timeadd(s.start, "0s")))
      && (s.end == null || can(timeadd(s.end, "0s")))
      && (s.start == null || s.end == null || try(timecmp(s.start, s.end) < 0, false))
    )]]))
    error_message = "deployments: a scheduled action's start and end are RFC 3339 instants, end after start."
  }
}

variable "budgets" {
  description = "Budgets by name, as rendered from the TOML."
  type = map(object({
    deployments      = optional(list(string))
    period           = string
    window           = optional(string)
    time_zone        = optional(string, "UTC")
    limit_usd        = number
    alert_thresholds = optional(list(number), [0.8, 1.0])
  }))
  default = {}

  validation {
    condition     = alltrue([for name in keys(var.budgets) : can(regex("^[a-z0-9_-]{1,64}$", name))])
    error_message = "budgets: every budget name must be 1-64 characters of a-z, 0-9, '-' or '_'."
  }

  validation {
    condition     = alltrue([for b in values(var.budgets) : contains(["daily", "monthly", "rolling"], b.period)])
    error_message = "budgets: period is \"daily\", \"monthly\" or \"rolling\"."
  }

  validation {
    condition = alltrue([for b in values(var.budgets) : b.period == "rolling" ? (
      b.window != null && can(regex("^([0-9]+(ms|s|m|h|d))+$", b.window))
      && try(sum([for m in regexall("([0-9]+)(ms|s|m|h|d)", b.window) : tonumber(m[0]) * lookup({ ms = 0.001, s = 1, m = 60, h = 3600, d = 86400 }, m[1])]) >= 3600, false)
      && try(sum([for m in regexall("([0-9]+)(ms|s|m|h|d)", b.window) : tonumber(m[0]) * lookup({ ms = 0.001, s = 1, m = 60, h = 3600, d = 86400 }, m[1])]) <= 31 * 86400, false)
    ) : b.window == null])
    error_message = "budgets: window is required for, and only for, period = \"rolling\", written with units, from 1h to 31d."
  }

  validation {
    condition     = alltrue([for b in values(var.budgets) : contains(jsondecode(file("${path.module}/time_zones.json")), b.time_zone)])
    error_message = "budgets: time_zone must be an IANA time zone (e.g. \"Europe/London\")."
  }

  validation {
    condition     = alltrue([for b in values(var.budgets) : b.limit_usd > 0])
    error_message = "budgets: limit_usd must be a positive number."
  }

  validation {
    condition     = alltrue([for b in values(var.budgets) : alltrue([for t in b.alert_thresholds : t > 0 && t <= 1]) && length(distinct(b.alert_thresholds)) == length(b.alert_thresholds)])
    error_message = "budgets: every alert threshold is a share of the limit in (0, 1], none listed twice."
  }

  validation {
    condition     = alltrue([for b in values(var.budgets) : b.deployments == null || try(length(b.deployments) > 0 && length(distinct(b.deployments)) == length(b.deployments) && alltrue([for d in b.deployments : contains(keys(var.deployments), d)]), false)])
    error_message = "budgets: deployments, when given, names configured deployments, at least one, none twice."
  }
}

variable "quotas" {
  description = "Service quotas (in vCPUs) by name, as rendered from the TOML."
  type = map(object({
    code  = string
    vcpus = number
    pools = list(string)
  }))
  default = {}

  validation {
    condition     = alltrue([for name in keys(var.quotas) : can(regex("^[a-z0-9_-]{1,64}$", name))])
    error_message = "quotas: every quota name must be 1-64 characters of a-z, 0-9, '-' or '_'."
  }

  validation {
    condition     = alltrue([for q in values(var.quotas) : can(regex("^L-[0-9A-F]{8}$", q.code))])
    error_message = "quotas: code is a Service Quotas code: `L-` and 8 upper-case hex digits, e.g. L-DB2E81BA."
  }

  validation {
    condition     = alltrue([for q in values(var.quotas) : q.vcpus >= 1 && length(q.pools) > 0])
    error_message = "quotas: vcpus must be at least 1, and pools must name at least one \"<deployment>/<pool>\"."
  }

  validation {
    condition = alltrue(flatten([for q in values(var.quotas) : [for entry in q.pools : try(
      var.deployments[split("/", entry)[0]].pools[split("/", entry)[1]].vcpus_per_instance >= 1 && length(split("/", entry)) == 2,
      false,
    )]]))
    error_message = "quotas: every pool is \"<deployment>/<pool>\" of a configured pool with vcpus_per_instance."
  }
}
