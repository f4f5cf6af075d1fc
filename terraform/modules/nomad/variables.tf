variable "image" {
  type        = string
  description = "dbmazz container image built from the repository's Dockerfile, e.g. registry.example.com/dbmazz:0.1.0."

  validation {
    condition     = length(trimspace(var.image)) > 0
    error_message = "image must name a container image."
  }
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the workers may run in."

  validation {
    condition     = length(var.datacenters) > 0
    error_message = "datacenters must list at least one datacenter (\"*\" for all)."
  }
}

variable "namespace" {
  type        = string
  default     = "default"
  description = "Nomad namespace of the job and of the secrets variable."
}

variable "worker_count" {
  type        = number
  default     = 2
  description = "Number of workers. Each job runs on one worker at a time; the others stand by and take over within a lease TTL."

  validation {
    condition     = var.worker_count >= 1 && floor(var.worker_count) == var.worker_count
    error_message = "worker_count must be a whole number of at least 1."
  }
}

variable "cpu" {
  type        = number
  default     = 500
  description = "CPU reserved per worker, in MHz."

  validation {
    condition     = var.cpu >= 100
    error_message = "cpu must be at least 100 MHz."
  }
}

variable "memory" {
  type        = number
  default     = 512
  description = "Memory per worker in MiB: above DBMAZZ_MEMORY_BUDGET_MB (256 per job by default) times the jobs one worker may run, plus about 64 MiB."

  validation {
    condition     = var.memory >= 128
    error_message = "memory must be at least 128 MiB."
  }
}

variable "tables" {
  type        = string
  description = "TABLES: PostgreSQL tables to replicate, comma-separated schema.table (see docs/configuration.md)."

  validation {
    condition     = length(trimspace(var.tables)) > 0
    error_message = "tables must name at least one table."
  }
}

variable "sink_url" {
  type        = string
  description = "SINK_URL: StarRocks FE HTTP address, e.g. http://starrocks-fe:8030 (no credentials, path or query)."

  validation {
    condition     = can(regex("^https?://[^/@?#]+/?$", var.sink_url))
    error_message = "sink_url must be http(s)://host:port without credentials, path or query."
  }
}

variable "sink_database" {
  type        = string
  description = "SINK_DATABASE: StarRocks database holding the target tables."

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,255}$", var.sink_database))
    error_message = "sink_database takes letters, digits and _, not starting with a digit."
  }
}

variable "sink_user" {
  type        = string
  default     = "root"
  description = "SINK_USER: StarRocks user for Stream Load and the MySQL protocol; its password is the sink_password item of the secrets variable."
}

variable "slot_name" {
  type        = string
  default     = "dbmazz_slot"
  description = "SOURCE_SLOT_NAME: logical replication slot of the job."

  validation {
    condition     = can(regex("^[a-z0-9_]{1,63}$", var.slot_name))
    error_message = "slot_name takes 1 to 63 lower-case letters, digits and _."
  }
}

variable "publication_name" {
  type        = string
  default     = "dbmazz_pub"
  description = "SOURCE_PUBLICATION_NAME: publication of the job's tables."

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.publication_name))
    error_message = "publication_name takes 1 to 63 lower-case letters, digits and _, not starting with a digit."
  }
}

variable "lease_backend" {
  type        = string
  default     = "postgres"
  description = "DBMAZZ_LEASE_BACKEND: postgres (leases beside the checkpoints) or redis (needs the lease_url item in the secrets variable); none only for a single worker."

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
  default     = 20000
  description = "DBMAZZ_SHUTDOWN_TIMEOUT_MS: drain deadline after SIGTERM (load, checkpoint, confirm, release the leases). Must stay below kill_timeout_seconds."

  validation {
    condition     = var.shutdown_timeout_ms >= 1000 && var.shutdown_timeout_ms <= 600000
    error_message = "shutdown_timeout_ms must be between 1000 and 600000."
  }
}

variable "kill_timeout_seconds" {
  type        = number
  default     = 30
  description = "Seconds between SIGTERM and SIGKILL: above the drain deadline plus the final telemetry flush. Nomad clients cap it at their max_kill_timeout (30 s by default): raise that too before going higher."

  validation {
    condition     = var.kill_timeout_seconds >= 2 && floor(var.kill_timeout_seconds) == var.kill_timeout_seconds
    error_message = "kill_timeout_seconds must be a whole number of at least 2."
  }
}

variable "otlp_endpoint" {
  type        = string
  default     = ""
  description = "OTEL_EXPORTER_OTLP_ENDPOINT: OTLP/gRPC collector for traces and metrics, e.g. http://otel-collector:4317; empty exports nothing."
}

variable "secrets_path" {
  type        = string
  default     = "nomad/jobs/dbmazz"
  description = "Nomad variable holding the secrets (items source_url, sink_password, control_token, optional lease_url). Under nomad/jobs/dbmazz the job reads it without an extra policy."
}

variable "wait_for_deployment" {
  type        = bool
  default     = true
  description = "Wait until the deployment is healthy (or failed) before the apply returns."
}

variable "purge_on_destroy" {
  type        = bool
  default     = false
  description = "Purge the job from Nomad's state on destroy instead of only stopping it."
}
