# One scale0 pool: a launch template and an Auto Scaling group that scale0 drives.
# scale0 owns the desired capacity (SetDesiredCapacity after every decision) and picks
# which instance terminates (TerminateInstanceInAutoScalingGroup after it drained), so
# the group's minimum is 0, its instances are protected from scale-in, and Terraform
# ignores changes to the desired capacity.

locals {
  spot = var.pool.capacity_type == "spot"
  tags = merge(var.tags, {
    "scale0:deployment" = var.pool.deployment
    "scale0:pool"       = var.pool.pool
  })
}

resource "aws_launch_template" "this" {
  name_prefix            = "${var.pool.asg_name}-"
  image_id               = var.image_id
  instance_type          = var.pool.instance_type
  user_data              = var.user_data == "" ? null : base64encode(var.user_data)
  vpc_security_group_ids = var.security_group_ids
  update_default_version = true

  dynamic "iam_instance_profile" {
    for_each = var.instance_profile_name == null ? [] : [var.instance_profile_name]
    content {
      name = iam_instance_profile.value
    }
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.root_volume_size_gb
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.ebs_kms_key_arn
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = local.tags
  }

  tag_specifications {
    resource_type = "volume"
    tags          = local.tags
  }

  tags = local.tags
}

resource "aws_autoscaling_group" "this" {
  name                      = var.pool.asg_name
  min_size                  = 0
  max_size                  = var.pool.max_instances
  desired_capacity          = 0
  vpc_zone_identifier       = var.subnet_ids
  protect_from_scale_in     = true
  capacity_rebalance        = local.spot
  health_check_type         = "EC2"
  health_check_grace_period = 0
  # Spot and on-demand instances both count as "the pool"; scale0's registry decides.
  wait_for_capacity_timeout = "0"

  # On-demand pools use the template directly: EC2 Auto Scaling refuses a warm pool on a
  # group with a mixed instances policy.
  dynamic "launch_template" {
    for_each = local.spot ? [] : [1]
    content {
      id      = aws_launch_template.this.id
      version = aws_launch_template.this.latest_version
    }
  }

  dynamic "mixed_instances_policy" {
    for_each = local.spot ? [1] : []
    content {
      instances_distribution {
        on_demand_base_capacity                  = 0
        on_demand_percentage_above_base_capacity = 0
        spot_allocation_strategy                 = "price-capacity-optimized"
      }
      launch_template {
        launch_template_specification {
          launch_template_id = aws_launch_template.this.id
          version            = aws_launch_template.this.latest_version
        }
        override {
          instance_type = var.pool.instance_type
        }
      }
    }
  }

  dynamic "warm_pool" {
    for_each = var.pool.warm_pool_size > 0 ? [1] : []
    content {
      pool_state                  = "Stopped"
      min_size                    = var.pool.warm_pool_size
      max_group_prepared_capacity = var.pool.warm_pool_size
      instance_reuse_policy {
        reuse_on_scale_in = false
      }
    }
  }

  initial_lifecycle_hook {
    name                 = "scale0-launching"
    lifecycle_transition = "autoscaling:EC2_INSTANCE_LAUNCHING"
    heartbeat_timeout    = var.pool.launching_heartbeat_seconds
    default_result       = "CONTINUE"
  }

  initial_lifecycle_hook {
    name                 = "scale0-terminating"
    lifecycle_transition = "autoscaling:EC2_INSTANCE_TERMINATING"
    heartbeat_timeout    = var.pool.terminating_heartbeat_seconds
    default_result       = "CONTINUE"
  }

  dynamic "tag" {
    for_each = local.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    # scale0 sets the desired capacity after every decision.
    ignore_changes = [desired_capacity]
  }
}
