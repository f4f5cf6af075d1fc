# dbmazz on ECS Fargate: a service of N identical workers sharing one job catalog
# through leases. Every value a worker reads is a dbmazz configuration variable
# (docs/configuration.md); tests/deploy.rs checks the names below against the registry.

data "aws_region" "current" {}

locals {
  spill_bucket = coalesce(var.spill_bucket_name, "${var.name}-spill-${data.aws_caller_identity.current.account_id}")

  # Plain settings of the worker. A null value is left out (dbmazz's default applies).
  environment = {
    DBMAZZ_GRPC_ADDR            = "0.0.0.0:${var.grpc_port}"
    DBMAZZ_METRICS_ADDR         = "0.0.0.0:${var.metrics_port}"
    DBMAZZ_LOG_FORMAT           = "json"
    DBMAZZ_LEASE_BACKEND        = var.lease_backend
    DBMAZZ_LEASE_TTL_MS         = tostring(var.lease_ttl_ms)
    DBMAZZ_SHUTDOWN_TIMEOUT_MS  = tostring(var.shutdown_timeout_ms)
    DBMAZZ_SPILL_URL            = "s3://${local.spill_bucket}/${var.spill_prefix}"
    TABLES                      = var.tables
    SOURCE_SLOT_NAME            = var.slot_name
    SOURCE_PUBLICATION_NAME     = var.publication_name
    SINK_URL                    = var.sink_url
    SINK_DATABASE               = var.sink_database
    SINK_USER                   = var.sink_user
    OTEL_EXPORTER_OTLP_ENDPOINT = var.otlp_endpoint
    OTEL_SERVICE_NAME           = var.name
  }

  # Secrets: injected by the ECS agent from Secrets Manager or SSM at start, never in the
  # task definition. A null ARN is left out.
  secrets = {
    SOURCE_URL            = var.source_url_secret_arn
    DBMAZZ_CONTROL_TOKEN  = var.control_token_secret_arn
    SINK_PASSWORD         = var.sink_password_secret_arn
    DBMAZZ_LEASE_URL      = var.lease_url_secret_arn
    DBMAZZ_CHECKPOINT_URL = var.checkpoint_url_secret_arn
  }

  # The image's entrypoint is the dbmazz binary.
  container_command    = ["run"]
  health_check_command = ["CMD", "/usr/local/bin/dbmazz", "healthcheck"]

  container_environment = [
    for k in sort(keys(merge(var.extra_environment, local.environment))) :
    { name = k, value = merge(var.extra_environment, local.environment)[k] }
    if merge(var.extra_environment, local.environment)[k] != null
  ]
  container_secrets = [
    for k in sort(keys(local.secrets)) : { name = k, valueFrom = local.secrets[k] }
    if local.secrets[k] != null
  ]

  container = {
    name                   = "dbmazz"
    image                  = var.image
    essential              = true
    command                = local.container_command
    environment            = local.container_environment
    secrets                = local.container_secrets
    readonlyRootFilesystem = true
    stopTimeout            = var.stop_timeout_seconds
    portMappings = [
      { name = "grpc", containerPort = var.grpc_port, protocol = "tcp" },
      { name = "metrics", containerPort = var.metrics_port, protocol = "tcp" },
    ]
    healthCheck = {
      command     = local.health_check_command
      interval    = 15
      timeout     = 10
      retries     = 3
      startPeriod = var.health_check_start_period_seconds
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.dbmazz.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "dbmazz"
      }
    }
  }
}

resource "aws_cloudwatch_log_group" "dbmazz" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_security_group" "dbmazz" {
  name        = var.name
  description = "dbmazz workers: gRPC control plane and Prometheus metrics in; PostgreSQL, StarRocks, leases, OTLP and AWS APIs out"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = var.name })

  # No rule without a source: with no clients given, nothing reaches the ports.
  dynamic "ingress" {
    for_each = length(var.client_cidr_blocks) + length(var.client_security_group_ids) > 0 ? { grpc = var.grpc_port, metrics = var.metrics_port } : {}
    content {
      description     = "dbmazz ${ingress.key} from operators and scrapers"
      from_port       = ingress.value
      to_port         = ingress.value
      protocol        = "tcp"
      cidr_blocks     = var.client_cidr_blocks
      security_groups = var.client_security_group_ids
    }
  }

  egress {
    description = "PostgreSQL, StarRocks, leases, OTLP collector, AWS APIs"
    from_port   = 0
    to_port     = 65535
    protocol    = "tcp"
    cidr_blocks = var.egress_cidr_blocks
  }
}

resource "aws_ecs_task_definition" "dbmazz" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.cpu)
  memory                   = tostring(var.memory)
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions    = jsonencode([local.container])
  tags                     = var.tags

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  lifecycle {
    precondition {
      condition     = var.stop_timeout_seconds * 1000 > var.shutdown_timeout_ms
      error_message = "stop_timeout_seconds must be above the drain deadline (shutdown_timeout_ms), or ECS kills workers in the middle of their drain."
    }
    precondition {
      condition     = var.lease_backend != "none" || var.worker_count == 1
      error_message = "Several workers need leases: set lease_backend to postgres or redis."
    }
    precondition {
      condition     = var.lease_backend != "redis" || var.lease_url_secret_arn != null
      error_message = "lease_backend = redis needs lease_url_secret_arn (the redis:// URL)."
    }
    precondition {
      condition     = length(setintersection(keys(var.extra_environment), concat(keys(local.environment), keys(local.secrets)))) == 0
      error_message = "extra_environment must not set a variable this module manages (use its dedicated input; secrets only through the *_secret_arn inputs)."
    }
    precondition {
      condition     = var.tables != null || contains(keys(var.extra_environment), "DBMAZZ_JOBS_FILE")
      error_message = "Set tables (one job from the environment) or DBMAZZ_JOBS_FILE in extra_environment (a jobs file in the image)."
    }
  }
}

resource "aws_ecs_service" "dbmazz" {
  name                   = var.name
  cluster                = var.cluster_arn
  task_definition        = aws_ecs_task_definition.dbmazz.arn
  desired_count          = var.worker_count
  launch_type            = "FARGATE"
  platform_version       = "LATEST"
  propagate_tags         = "SERVICE"
  enable_execute_command = false
  tags                   = var.tags

  # Rolling replacement: new workers start as standbys and take the jobs the old ones
  # release when they drain.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.dbmazz.id]
    assign_public_ip = var.assign_public_ip
  }
}
