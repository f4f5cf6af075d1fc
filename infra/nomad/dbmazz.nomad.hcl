# dbmazz on Nomad: a group of identical stateless workers sharing one job catalog through
# leases (PostgreSQL or Redis). Each worker streams the jobs whose leases it holds; when a
# worker dies, another takes its jobs over from the checkpoint.
#
#   nomad var put nomad/jobs/dbmazz source_url='postgres://...' sink_password='...' control_token='...'
#   nomad job run -var image=registry.example.com/dbmazz:0.1.0 -var tables=public.orders \
#     -var sink_url=http://starrocks-fe:8030 -var sink_database=analytics dbmazz.nomad.hcl
#
# This file is also terraform/modules/nomad/dbmazz.nomad.hcl, which the Terraform module
# submits with these variables; tests/deploy.rs checks that the two files are identical and
# that the module passes exactly the variables declared here.
#
# Requirements: the docker driver, and Consul as the service provider (Nomad's own
# service provider has no gRPC checks). Secrets come from the Nomad variable at
# `secrets_path` (items source_url, sink_password, control_token, and lease_url when the
# lease database is not the source database); they never appear in this file.

variable "image" {
  type        = string
  description = "dbmazz container image, e.g. registry.example.com/dbmazz:0.1.0 (built from the repository's Dockerfile)."
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the workers may run in."
}

variable "namespace" {
  type        = string
  default     = "default"
  description = "Nomad namespace of the job (and of the secrets variable)."
}

variable "worker_count" {
  type        = number
  default     = 2
  description = "Number of workers. Each job runs on one worker at a time; the others stand by and take over."
}

variable "cpu" {
  type        = number
  default     = 500
  description = "CPU reserved per worker, in MHz."
}

variable "memory" {
  type        = number
  default     = 512
  description = "Memory per worker, in MiB: above DBMAZZ_MEMORY_BUDGET_MB (256 per job by default) times the jobs a worker may run, plus about 64 MiB."
}

variable "tables" {
  type        = string
  description = "TABLES: the PostgreSQL tables to replicate, comma-separated schema.table."
}

variable "sink_url" {
  type        = string
  description = "SINK_URL: the StarRocks FE HTTP address, e.g. http://starrocks-fe:8030."
}

variable "sink_database" {
  type        = string
  description = "SINK_DATABASE: the StarRocks database holding the target tables."
}

variable "sink_user" {
  type        = string
  default     = "root"
  description = "SINK_USER: the StarRocks user (its password is the sink_password item of the secrets variable)."
}

variable "slot_name" {
  type        = string
  default     = "dbmazz_slot"
  description = "SOURCE_SLOT_NAME: the logical replication slot of the job."
}

variable "publication_name" {
  type        = string
  default     = "dbmazz_pub"
  description = "SOURCE_PUBLICATION_NAME: the publication of the job's tables."
}

variable "lease_backend" {
  type        = string
  default     = "postgres"
  description = "DBMAZZ_LEASE_BACKEND: postgres (leases beside the checkpoints) or redis (lease_url item required)."
}

variable "lease_ttl_ms" {
  type        = number
  default     = 10000
  description = "DBMAZZ_LEASE_TTL_MS: lease time-to-live; a dead worker's jobs move after at most this long."
}

variable "shutdown_timeout_ms" {
  type        = number
  default     = 20000
  description = "DBMAZZ_SHUTDOWN_TIMEOUT_MS: drain deadline after SIGTERM. Keep it below kill_timeout."
}

variable "kill_timeout" {
  type        = string
  default     = "30s"
  description = "Time between SIGTERM and SIGKILL: above shutdown_timeout_ms plus the final telemetry flush. Nomad clients cap it at their max_kill_timeout (30s by default)."
}

variable "otlp_endpoint" {
  type        = string
  default     = ""
  description = "OTEL_EXPORTER_OTLP_ENDPOINT: OTLP/gRPC collector for traces and metrics, e.g. http://otel-collector:4317; empty exports nothing."
}

variable "secrets_path" {
  type        = string
  default     = "nomad/jobs/dbmazz"
  description = "Path of the Nomad variable holding the secrets (readable by this job without a policy under nomad/jobs/dbmazz)."
}

job "dbmazz" {
  namespace   = var.namespace
  datacenters = var.datacenters
  type        = "service"

  # One worker at a time: the replaced worker drains and releases its leases, a worker of
  # the new version takes them within one poll.
  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "30s"
    healthy_deadline  = "5m"
    progress_deadline = "10m"
    auto_revert       = true
  }

  group "workers" {
    count = var.worker_count

    # Workers on different nodes, so one node failure leaves standbys to take over.
    spread {
      attribute = "${node.unique.id}"
    }

    # A worker that exits (an error an operator must fix, or a crash) is restarted in
    # place a few times with a delay, then rescheduled elsewhere with back-off.
    restart {
      attempts = 3
      interval = "5m"
      delay    = "15s"
      mode     = "delay"
    }

    reschedule {
      delay          = "30s"
      delay_function = "exponential"
      max_delay      = "10m"
      unlimited      = true
    }

    network {
      port "grpc" {
        to = 50051
      }
      port "metrics" {
        to = 9187
      }
    }

    # grpc.health.v1 with the empty service name: the whole worker, SERVING while every
    # pipeline streams and while a standby waits for a lease.
    service {
      name     = "dbmazz"
      provider = "consul"
      port     = "grpc"
      tags     = ["grpc"]

      check {
        name     = "dbmazz-grpc-health"
        type     = "grpc"
        port     = "grpc"
        interval = "10s"
        timeout  = "5s"

        # Setup (publication, slot, StarRocks checks) is NOT_SERVING: give it time before
        # an unhealthy worker is restarted.
        check_restart {
          limit = 3
          grace = "120s"
        }
      }
    }

    service {
      name     = "dbmazz-metrics"
      provider = "consul"
      port     = "metrics"
      tags     = ["prometheus"]

      check {
        name     = "dbmazz-metrics-port"
        type     = "tcp"
        port     = "metrics"
        interval = "30s"
        timeout  = "5s"
      }
    }

    task "dbmazz" {
      driver       = "docker"
      kill_signal  = "SIGTERM"
      kill_timeout = var.kill_timeout

      config {
        image           = var.image
        args            = ["run"]
        ports           = ["grpc", "metrics"]
        readonly_rootfs = true
      }

      env {
        DBMAZZ_WORKER_ID            = "dbmazz-${NOMAD_SHORT_ALLOC_ID}"
        DBMAZZ_GRPC_ADDR            = "0.0.0.0:50051"
        DBMAZZ_METRICS_ADDR         = "0.0.0.0:9187"
        DBMAZZ_LOG_FORMAT           = "json"
        DBMAZZ_LEASE_BACKEND        = var.lease_backend
        DBMAZZ_LEASE_TTL_MS         = var.lease_ttl_ms
        DBMAZZ_SHUTDOWN_TIMEOUT_MS  = var.shutdown_timeout_ms
        TABLES                      = var.tables
        SOURCE_SLOT_NAME            = var.slot_name
        SOURCE_PUBLICATION_NAME     = var.publication_name
        SINK_URL                    = var.sink_url
        SINK_DATABASE               = var.sink_database
        SINK_USER                   = var.sink_user
        OTEL_EXPORTER_OTLP_ENDPOINT = var.otlp_endpoint
        OTEL_SERVICE_NAME           = "dbmazz"
        OTEL_RESOURCE_ATTRIBUTES    = "service.instance.id=${NOMAD_ALLOC_ID}"
      }

      # Secrets, rendered into the task's secrets directory (never on the image, never in
      # the job's definition). For Vault, replace the `with nomadVar` line by
      # `with secret "kv/data/dbmazz"` and the items by `.Data.data.<item>`.
      template {
        destination = "secrets/dbmazz.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
        {{- with nomadVar "${var.secrets_path}" }}
        SOURCE_URL={{ .source_url }}
        SINK_PASSWORD={{ .sink_password }}
        DBMAZZ_CONTROL_TOKEN={{ .control_token }}
        {{- range .Tuples }}{{ if eq .K "lease_url" }}
        DBMAZZ_LEASE_URL={{ .V }}{{ end }}{{ end }}
        {{- end }}
        EOT
      }

      resources {
        cpu    = var.cpu
        memory = var.memory
      }
    }
  }
}
