data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

locals {
  secret_arns = compact(values(local.secrets))
  # A Secrets Manager reference may end with a JSON key (`:key:stage:version`); IAM wants
  # the secret's own ARN, its first seven fields.
  secretsmanager_arns = distinct([
    for a in local.secret_arns : join(":", slice(split(":", a), 0, 7))
    if can(regex("^arn:[^:]+:secretsmanager:", a))
  ])
  ssm_parameter_arns = [for a in local.secret_arns : a if can(regex("^arn:[^:]+:ssm:", a))]
}

# Execution role: used by the ECS agent to pull the image, write the logs and read the
# secrets into the container's environment.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secrets" {
  dynamic "statement" {
    for_each = length(local.secretsmanager_arns) > 0 ? [1] : []
    content {
      sid       = "ReadSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.secretsmanager_arns
    }
  }
  dynamic "statement" {
    for_each = length(local.ssm_parameter_arns) > 0 ? [1] : []
    content {
      sid       = "ReadParameters"
      actions   = ["ssm:GetParameters"]
      resources = local.ssm_parameter_arns
    }
  }
  dynamic "statement" {
    for_each = length(var.secrets_kms_key_arns) > 0 ? [1] : []
    content {
      sid       = "DecryptSecrets"
      actions   = ["kms:Decrypt"]
      resources = var.secrets_kms_key_arns
    }
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  name   = "read-dbmazz-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets.json
}

# Task role: what dbmazz itself may do with AWS. Only the spill prefix of the spill
# bucket: write, read back and delete staged transactions.
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "task_spill" {
  statement {
    sid = "SpillObjects"
    actions = [
      "s3:PutObject",
      "s3:GetObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.spill.arn}/${var.spill_prefix}/*"]
  }
  statement {
    sid       = "ListSpillPrefix"
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.spill.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.spill_prefix}/*"]
    }
  }
  dynamic "statement" {
    for_each = var.spill_kms_key_arn == null ? [] : [1]
    content {
      sid       = "SpillEncryption"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [var.spill_kms_key_arn]
    }
  }
}

resource "aws_iam_role_policy" "task_spill" {
  name   = "dbmazz-spill"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task_spill.json
}
