#!/usr/bin/env bash
# Create the secrets deploy/compose.yaml reads, once, in deploy/secrets/ (mode 0600; existing
# files are kept, so running it again changes nothing). Needs openssl and python3.
#   secret_key            Django's SECRET_KEY (sessions, CSRF): the same in every process
#   field_encryption_key  Fernet key of the secrets stored encrypted (FIELD_ENCRYPTION_KEY)
#   registry_token_key    RSA key that signs registry tokens (REGISTRY_TOKEN_KEY_FILE)
#   postgres_password     the database password, and database_url, the URL with it
#   s3_secret_key         the S3 server's root password and the registry's S3 secret key
#   builder_secret        the build workers' registration secret (BUILDER_REGISTRATION_SECRET)
#   admin_password        the first superuser's password (DJANGO_SUPERUSER_PASSWORD)
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 700 "$dir"
umask 077

random() { python3 -c 'import secrets; print(secrets.token_urlsafe(int(__import__("sys").argv[1])))' "$1"; }
create() {
    local name=$1
    shift
    if [[ ! -s $dir/$name ]]; then
        "$@" >"$dir/$name.tmp"
        mv "$dir/$name.tmp" "$dir/$name"
        echo "created secrets/$name"
    fi
}

create secret_key random 50
create field_encryption_key python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'
create registry_token_key openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048
create postgres_password random 24
create database_url printf 'postgres://quay:%s@postgres:5432/quay\n' "$(cat "$dir/postgres_password")"
create s3_secret_key random 30
create builder_secret random 36
create admin_password random 18
# The containers run as other users (quay, postgres, minio): compose mounts these files as they
# are, so they must be readable there. Keep the directory itself closed instead.
chmod 644 "$dir"/*
