#!/usr/bin/env bash
# Why HTTP is served by gunicorn and not Daphne: the same Django app on one DATA_DIR behind
# gunicorn (gthread, sendfile) and Daphne (ASGI), alternating, for a manifest GET (wrk -c32) and
# a 1 GiB blob GET (curl), with Daphne's RSS before and after each blob GET.
# Usage: bench/compare_servers.sh  (from the repository root, after `make venv`).
# (The upload URL has no trailing slash: curl -T would append the file name to one.)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d -t compare-servers.XXXXXX)
trap 'kill $G $D 2>/dev/null || true; rm -rf "$work"' EXIT
export DATA_DIR=$work/data
.venv/bin/python manage.py migrate -v0
.venv/bin/python manage.py shell -v0 -c "
from accounts.services import user_create
from registry import services
from registry.permissions import Principal
u = user_create(username='bench', password='bench-password')
services.repository_create(namespace=u.namespace, name='img', principal=Principal(kind='user', user=u),
                           visibility='public')"
# A real image: busybox-static packed with umoci.
(cd "$work" && umoci init --layout oci >/dev/null && umoci new --image oci:bb >/dev/null \
  && umoci unpack --rootless --image oci:bb bundle >/dev/null && mkdir -p bundle/rootfs/bin \
  && cp /bin/busybox bundle/rootfs/bin/ && umoci repack --image oci:bb bundle >/dev/null)
head -c 1073741824 /dev/urandom >"$work/blob"
BLOB=sha256:$(sha256sum "$work/blob" | cut -d' ' -f1)
PORT=8401 .venv/bin/python -m gunicorn quay_site.wsgi:application -c quay_site/gunicorn_conf.py >"$work/g.log" 2>&1 &
G=$!
.venv/bin/daphne -b 127.0.0.1 -p 8402 quay_site.asgi:application >"$work/d.log" 2>&1 &
D=$!
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:8401/v2/ && curl -s -o /dev/null http://127.0.0.1:8402/v2/ && break; sleep 0.2; done
skopeo copy -q --dest-tls-verify=false --dest-creds bench:bench-password "oci:$work/oci:bb" \
  docker://127.0.0.1:8401/bench/img:latest
TOK=$(curl -s -u bench:bench-password \
  "http://127.0.0.1:8401/v2/auth?service=127.0.0.1:8401&scope=repository:bench/img:pull,push" \
  | python3 -c 'import sys,json;print(json.load(sys.stdin)["token"])')
code=$(curl -s -o /dev/null -w "%{http_code}" -X POST -H "Expect:" -H "Authorization: Bearer $TOK" -T "$work/blob" \
  "http://127.0.0.1:8401/v2/bench/img/blobs/uploads?digest=$BLOB")
[ "$code" = 201 ] || { echo "blob upload answered $code" >&2; exit 1; }
ACC="Accept: application/vnd.oci.image.manifest.v1+json"
for _ in 1 2 3; do
  for port in 8401 8402; do
    rate=$(wrk -t2 -c32 -d5s -H "$ACC" "http://127.0.0.1:$port/v2/bench/img/manifests/latest" | awk '/Requests\/sec/{print $2}')
    echo "$( [ $port = 8401 ] && echo gunicorn || echo daphne ) manifest GET: $rate req/s"
  done
done
for _ in 1 2; do
  for port in 8401 8402; do
    before=$(ps -o rss= -p $D | tr -d ' ')
    speed=$(curl -s -o /dev/null -w '%{speed_download}' --max-time 120 "http://127.0.0.1:$port/v2/bench/img/blobs/$BLOB")
    after=$(ps -o rss= -p $D | tr -d ' ')
    echo "$( [ $port = 8401 ] && echo gunicorn || echo daphne ) 1 GiB blob GET: $speed B/s (Daphne RSS ${before} -> ${after} KiB)"
  done
done
