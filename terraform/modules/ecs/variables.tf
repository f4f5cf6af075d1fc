# ---- service -------------------------------------------------------------------------

variable "name" {
  type        = string
  default     = "dbmazz"
  description = "Name of the service, task family, log group, IAM roles and security group (and prefix of the spill bucket's name)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,31}$", var.name))
    error_message = "name takes 1 to 32 lower-case letters, digits and -, starting with a letter."
  }
}

variable "cluster_arn" {
  type        = string
  description = "ARN of the ECS cluster the service runs in."

  validation {
    condition     = can(regex("^arn:[^:]+:ecs:[^:]+:[0-9]{12}:cluster/.+$", var.cluster_arn))
    error_message = "cluster_arn must be an ECS cluster ARN."
  }
}

variable "image" {
  type        = string
  description = "dbmazz container image built from the repository's Dockerfile, e.g. <account>.dkr.ecr.<region>.amazonaws.com/dbmazz:0.1.0."

  validation {
    condition     = length(trimspace(var.image)) > 0
    error_message = "image must name a container image."
  }
}

variable "worker_count" {
  type        = number
  default     = 2
  description = "Number of workers (tasks). Each job runs on one worker at a time; the others stand by and take over within a lease TTL."

  validation {
    condition     = var.worker_count >= 1 && floor(var.worker_count) == var.worker_count
    error_message = "worker_count must be a whole number of at least 1."
  }
}

variable "cpu" {
  type        = number
  default     = 512
  description = "Fargate CPU units per worker (1024 = 1 vCPU)."

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.cpu)
    error_message = "cpu must be a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "memory" {
  type        = number
  default     = 1024
  description = "Memory per worker in MiB (a valid Fargate combination with cpu): above DBMAZZ_MEMORY_BUDGET_MB (256 per job by default) times the jobs one worker may run, plus about 64 MiB."

  validation {
    condition     = var.memory >= 512 && var.memory <= 122880
    error_message = "memory must be between 512 and 122880 MiB."
  }
}

variable "cpu_architecture" {
  type        = string
  default     = "X86_64"
  description = "CPU architecture of the image: X86_64 or ARM64."

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

# ---- network -------------------------------------------------------------------------

variable "vpc_id" {
  type        = string
  description = "VPC of the workers' security group."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets of the workers; they need routes to PostgreSQL, StarRocks, the OTLP collector and the AWS APIs (Secrets Manager or SSM, ECR, CloudWatch Logs, S3)."

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids must list at least one subnet."
  }
}

variable "grpc_port" {
  type        = number
  default     = 50051
  description = "Port of the gRPC control plane (health, status, control, metrics stream)."

  validation {
    condition     = var.grpc_port >= 1 && var.grpc_port <= 65535
    error_message = "grpc_port must be a port number."
  }
}

variable "metrics_port" {
  type        = number
  default     = 9187
  description = "Port of the Prometheus endpoint (GET /metrics)."

  validation {
    condition     = var.metrics_port >= 1 && var.metrics_port <= 65535
    error_message = "metrics_port must be a port number."
  }
}

variable "client_cidr_blocks" {
  type        = list(string)
  default     = []
  description = "Networks allowed to reach the gRPC and metrics ports (operators running `dbmazz status`, Prometheus)."

  validation {
    condition     = alltrue([for c in var.client_cidr_blocks : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "client_cidr_blocks must be CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "client_security_group_ids" {
  type        = list(string)
  default     = []
  description = "Security groups allowed to reach the gRPC and metrics ports."
}

variable "egress_cidr_blocks" {
  type        = list(string)
  description = "Networks the workers connect to over TCP: PostgreSQL, StarRocks (FE and BE HTTP, MySQL port), the lease Redis, the OTLP collector, and the AWS endpoints (or the VPC endpoints' subnets)."

  validation {
    condition     = length(var.egress_cidr_blocks) > 0 && alltrue([for c in var.egress_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "egress_cidr_blocks must list at least one CIDR block."
  }
}

variable "assign_public_ip" {
  type        = bool
  default     = false
  description = "Give each task a public IP (only for subnets without a NAT gateway)."
}

# ---- the job -------------------------------------------------------------------------

variable "tables" {
  type        = string
  default     = null
  description = "TABLES: PostgreSQL tables to replicate, comma-separated schema.table. Null when extra_environment sets DBMAZZ_JOBS_FILE (a jobs file baked into the image)."
}

variable "sink_url" {
  type        = string
  default     = null
  description = "SINK_URL: StarRocks FE HTTP address, e.g. http://starrocks-fe.internal:8030 (no credentials, path or query). Null when a jobs file sets it."

  validation {
    condition     = var.sink_url == null || can(regex("^https?://[^/@?#]+/?$", var.sink_url))
    error_message = "sink_url must be http(s)://host:port without credentials, path or query."
  }
}

variable "sink_database" {
  type        = string
  default     = null
  description = "SINK_DATABASE: StarRocks database holding the target tables. Null when a jobs file sets it."
}

variable "sink_user" {
  type        = string
  default     = null
  description = "SINK_USER: StarRocks user (dbmazz's default: root); its password comes from sink_password_secret_arn."
}

variable "slot_name" {
  type        = string
  default     = null
  description = "SOURCE_SLOT_NAME: logical replication slot of the job (dbmazz's default: dbmazz_slot)."
}

variable "publication_name" {
  type        = string
  default     = null
  description = "SOURCE_PUBLICATION_NAME: publication of the job's tables (dbmazz's default: dbmazz_pub)."
}

variable "lease_backend" {
  type        = string
  default     = "postgres"
  description = "DBMAZZ_LEASE_BACKEND: postgres (leases beside the checkpoints) or redis (needs lease_url_secret_arn); none only for a single worker."

  validation {
    condition     = contains(["postgres", "redis", "none"], var.lease_backend)
    error_message = "lease_backend must be postgres, redis or none."
  }
}

variable "lease_ttl_ms" {
  type        = number
  default     = 10000
  description = "DBMAZZ_LEASE_TTL_MS: lease time-to-live; a dead worker's jobs move after at most this long."

  validation {
    condition     = var.lease_ttl_ms >= 1000 && var.lease_ttl_ms <= 300000
    error_message = "lease_ttl_ms must be between 1000 and 300000."
  }
}

variable "shutdown_timeout_ms" {
  type        = number
  default     = 25000
  description = "DBMAZZ_SHUTDOWN_TIMEOUT_MS: drain deadline after SIGTERM (load, checkpoint, confirm, release the leases). Must stay below stop_timeout_seconds."

  validation {
    condition     = var.shutdown_timeout_ms >= 1000 && var.shutdown_timeout_ms <= 600000
    error_message = "shutdown_timeout_ms must be between 1000 and 600000."
  }
}

variable "stop_timeout_seconds" {
  type        = number
  default     = 40
  description = "Container stopTimeout: seconds between SIGTERM and SIGKILL, above the drain deadline plus the final telemetry flush. Fargate allows at most 120."

  validation {
    condition     = var.stop_timeout_seconds >= 2 && var.stop_timeout_seconds <= 120 && floor(var.stop_timeout_seconds) == var.stop_timeout_seconds
    error_message = "stop_timeout_seconds must be a whole number from 2 to 120 (the Fargate maximum)."
  }
}

variable "extra_environment" {
  type        = map(string)
  default     = {}
  description = "Further dbmazz variables (docs/configuration.md), e.g. FLUSH_INTERVAL_MS or DBMAZZ_JOBS_FILE; `dbmazz check` rules apply at start. Secrets never go here."
}

# ---- secrets -------------------------------------------------------------------------

variable "source_url_secret_arn" {
  type        = string
  description = "Secrets Manager secret (or SSM SecureString parameter) ARN holding SOURCE_URL, the PostgreSQL URL with its password. A Secrets Manager JSON key may be selected with the `:key::` suffix."

  validation {
    condition     = can(regex("^arn:[^:]+:(secretsmanager|ssm):", var.source_url_secret_arn))
    error_message = "source_url_secret_arn must be a Secrets Manager secret or SSM parameter ARN."
  }
}

variable "control_token_secret_arn" {
  type        = string
  description = "Secret or SSM parameter ARN holding DBMAZZ_CONTROL_TOKEN (16 to 4096 printable characters), the bearer token of pause, resume, drain and stop."

  validation {
    condition     = can(regex("^arn:[^:]+:(secretsmanager|ssm):", var.control_token_secret_arn))
    error_message = "control_token_secret_arn must be a Secrets Manager secret or SSM parameter ARN."
  }
}

variable "sink_password_secret_arn" {
  type        = string
  default     = null
  description = "Secret or SSM parameter ARN holding SINK_PASSWORD, the StarRocks password; null for a user without password."

  validation {
    condition     = var.sink_password_secret_arn == null || can(regex("^arn:[^:]+:(secretsmanager|ssm):", var.sink_password_secret_arn))
    error_message = "sink_password_secret_arn must be a Secrets Manager secret or SSM parameter ARN."
  }
}

variable "lease_url_secret_arn" {
  type        = string
  default     = null
  description = "Secret or SSM parameter ARN holding DBMAZZ_LEASE_URL: required for redis; for postgres, null keeps the leases in the checkpoint database."

  validation {
    condition     = var.lease_url_secret_arn == null || can(regex("^arn:[^:]+:(secretsmanager|ssm):", var.lease_url_secret_arn))
    error_message = "lease_url_secret_arn must be a Secrets Manager secret or SSM parameter ARN."
  }
}

variable "checkpoint_url_secret_arn" {
  type        = string
  default     = null
  description = "Secret or SSM parameter ARN holding DBMAZZ_CHECKPOINT_URL; null keeps the checkpoints in the source database."

  validation {
    condition     = var.checkpoint_url_secret_arn == null || can(regex("^arn:[^:]+:(secretsmanager|ssm):", var.checkpoint_url_secret_arn))
    error_message = "checkpoint_url_secret_arn must be a Secrets Manager secret or SSM parameter ARN."
  }
}

variable "secrets_kms_key_arns" {
  type        = list(string)
  default     = []
  description = "Customer managed KMS keys encrypting the secrets or parameters above (the execution role may decrypt with them); empty for AWS managed keys."
}

# ---- spill ---------------------------------------------------------------------------

variable "spill_bucket_name" {
  type        = string
  default     = null
  description = "Name of the spill bucket this module creates; null derives one from name."

  validation {
    condition     = var.spill_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.spill_bucket_name))
    error_message = "spill_bucket_name must be a valid S3 bucket name."
  }
}

variable "spill_prefix" {
  type        = string
  default     = "spill"
  description = "Key prefix of the spill objects (DBMAZZ_SPILL_URL is s3://<bucket>/<prefix>); the task role may touch nothing else."

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$", var.spill_prefix))
    error_message = "spill_prefix must be a non-empty key prefix without leading, trailing or double slashes."
  }
}

variable "spill_expiration_days" {
  type        = number
  default     = 7
  description = "Spill objects older than this are deleted by a lifecycle rule (a spilled transaction lives until it commits and loads; stale objects are leftovers of crashed workers)."

  validation {
    condition     = var.spill_expiration_days >= 1
    error_message = "spill_expiration_days must be at least 1."
  }
}

variable "spill_kms_key_arn" {
  type        = string
  default     = null
  description = "Customer managed KMS key encrypting the spill bucket; null uses the AWS managed aws/s3 key."
}

variable "spill_access_log_bucket" {
  type        = string
  default     = null
  description = "Bucket receiving S3 server access logs of the spill bucket; null disables access logging."
}

variable "spill_force_destroy" {
  type        = bool
  default     = false
  description = "Let `terraform destroy` delete a non-empty spill bucket."
}

# ---- logs, telemetry, health ---------------------------------------------------------

variable "log_retention_days" {
  type        = number
  default     = 365
  description = "Days CloudWatch keeps the workers' logs."

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ..., 365, 400, ..., 3653)."
  }
}

variable "log_kms_key_arn" {
  type        = string
  default     = null
  description = "KMS key encrypting the log group; null uses CloudWatch's own encryption. The key policy must allow the logs service."
}

variable "otlp_endpoint" {
  type        = string
  default     = null
  description = "OTEL_EXPORTER_OTLP_ENDPOINT: OTLP/gRPC collector for traces and metrics, e.g. http://otel-collector.internal:4317; null exports nothing."

  validation {
    condition     = var.otlp_endpoint == null || can(regex("^https?://", var.otlp_endpoint))
    error_message = "otlp_endpoint must be an http:// or https:// URL."
  }
}

variable "health_check_start_period_seconds" {
  type        = number
  default     = 120
  description = "Grace period of the container health check: setup (publication, slot, StarRocks checks) reports NOT_SERVING."

  validation {
    condition     = var.health_check_start_period_seconds >= 0 && var.health_check_start_period_seconds <= 300
    error_message = "health_check_start_period_seconds must be between 0 and 300."
  }
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags for every resource this module creates."
}
