# Example: a fleet of dbmazz workers on ECS Fargate replicating two tables of a
# PostgreSQL database into StarRocks. The secrets are created empty here and filled
# outside Terraform (README.md), so their values never enter the Terraform state.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0.0, < 7.0.0"
    }
  }
}

provider "aws" {
  region = var.region
}

data "aws_caller_identity" "current" {}

# One key for the secrets of this deployment.
resource "aws_kms_key" "dbmazz" {
  description         = "dbmazz secrets"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.kms.json
}

data "aws_iam_policy_document" "kms" {
  # AWS's default key policy: the account administers the key through IAM. In a key
  # policy, resource "*" is this key only.
  #checkov:skip=CKV_AWS_109:Default key policy; "*" is the key itself, access is delegated to the account's IAM policies.
  #checkov:skip=CKV_AWS_111:Default key policy; "*" is the key itself, access is delegated to the account's IAM policies.
  #checkov:skip=CKV_AWS_356:Default key policy; "*" is the key itself, access is delegated to the account's IAM policies.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_secretsmanager_secret" "dbmazz" {
  for_each = toset(["source-url", "sink-password", "control-token"])

  #checkov:skip=CKV2_AWS_57:Connection URLs, the StarRocks password and the control token are rotated by their owners, not by a rotation Lambda.
  name       = "dbmazz/${each.key}"
  kms_key_id = aws_kms_key.dbmazz.arn
}

resource "aws_ecs_cluster" "dbmazz" {
  name = "dbmazz"

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

module "dbmazz" {
  source = "../../modules/ecs"

  name         = "dbmazz"
  cluster_arn  = aws_ecs_cluster.dbmazz.arn
  image        = var.image
  worker_count = 2

  vpc_id                    = var.vpc_id
  subnet_ids                = var.subnet_ids
  client_security_group_ids = var.client_security_group_ids
  egress_cidr_blocks        = var.egress_cidr_blocks

  tables           = "public.orders,public.order_items"
  slot_name        = "orders"
  publication_name = "orders_pub"
  sink_url         = var.sink_url
  sink_database    = "analytics"
  sink_user        = "dbmazz"
  lease_backend    = "postgres"
  otlp_endpoint    = var.otlp_endpoint

  extra_environment = {
    FLUSH_INTERVAL_MS = "250"
  }

  source_url_secret_arn    = aws_secretsmanager_secret.dbmazz["source-url"].arn
  sink_password_secret_arn = aws_secretsmanager_secret.dbmazz["sink-password"].arn
  control_token_secret_arn = aws_secretsmanager_secret.dbmazz["control-token"].arn
  secrets_kms_key_arns     = [aws_kms_key.dbmazz.arn]

  tags = { application = "dbmazz" }
}
