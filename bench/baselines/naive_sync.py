"""The naive sync, written the obvious way with boto3 and hvac: list the Vault tree, read every
secret, and for every target account write every secret (PutSecretValue, or CreateSecret when
it does not exist yet) — the pattern jbcom/secretsync's Go pipeline follows. It is the baseline
the benchmark compares secretsync with (bench/harness.py), not a tool anyone should run.

Usage: naive_sync.py VAULT_ADDR MOUNT ACCOUNT_ID... [--dry-run]
Environment: VAULT_TOKEN, AWS_ENDPOINT_URL, AWS credentials and region.
"""

import json
import sys

import boto3
import hvac


def walk(client, mount, folder=""):
    """Every secret path under `folder`, depth first, one LIST per folder."""
    listed = client.secrets.kv.v2.list_secrets(path=folder, mount_point=mount)
    for key in listed["data"]["keys"]:
        if key.endswith("/"):
            yield from walk(client, mount, folder + key)
        else:
            yield folder + key


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    dry_run = "--dry-run" in sys.argv
    vault_addr, mount, accounts = args[0], args[1], args[2:]
    vault = hvac.Client(url=vault_addr)
    secrets = {}
    for path in walk(vault, mount):
        data = vault.secrets.kv.v2.read_secret_version(path=path, mount_point=mount, raise_on_deleted_version=True)
        secrets[path] = json.dumps(data["data"]["data"], sort_keys=True)
    sts = boto3.client("sts")
    written = 0
    for account in accounts:
        role = sts.assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
            RoleSessionName="naive-sync",
        )["Credentials"]
        sm = boto3.client(
            "secretsmanager",
            aws_access_key_id=role["AccessKeyId"],
            aws_secret_access_key=role["SecretAccessKey"],
            aws_session_token=role["SessionToken"],
        )
        for name, value in secrets.items():
            if dry_run:
                # A dry run has to read each secret to say what would change.
                try:
                    sm.get_secret_value(SecretId=name)
                except sm.exceptions.ResourceNotFoundException:
                    pass
                continue
            try:
                sm.put_secret_value(SecretId=name, SecretString=value)
            except sm.exceptions.ResourceNotFoundException:
                sm.create_secret(Name=name, SecretString=value)
            written += 1
    print(json.dumps({"secrets": len(secrets), "accounts": len(accounts), "writes": written}))


if __name__ == "__main__":
    main()
