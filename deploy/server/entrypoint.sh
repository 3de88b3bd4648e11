#!/bin/sh
# Entry point of the server image: one role per container, the same commands as `manage.py serve`
# starts on one machine (README: Deployment, Distributed mode).
#
#   web      gunicorn (quay_site/gunicorn_conf.py): /v2/, /api/v1/, the UI, admin  on HOST:PORT
#   ws       Daphne: build workers and live build logs                            on HOST:WS_PORT
#   worker   a Celery worker (extra arguments are added: -n name@%h, --concurrency=N)
#   beat     celery beat: exactly one for the whole installation
#   serve    everything of one machine in one container (`manage.py serve`; arguments passed on)
#   migrate  apply database migrations and exit (run once before the others, after each upgrade)
#   manage   any `manage.py` command: `manage createsuperuser`, `manage gc`, `manage shell`, ...
#   roles    print the roles above, one a line
# Anything else is run as a command (`sh`, `python`, ...).
#
# QUAY_MIGRATE_AT_START=1 applies migrations before web/ws/worker/beat/serve start: handy for
# one container; with several, run the `migrate` role once instead (two would race).
set -eu

cd /opt/quay/app
role=${1:-web}
[ $# -gt 0 ] && shift

migrate() {
    python manage.py migrate --noinput
    # The superuser of DJANGO_SUPERUSER_USERNAME/PASSWORD, made (or promoted) as `manage.py serve`
    # does at its start: with one process per container nothing else would make it. The password
    # may come from a file (DJANGO_SUPERUSER_PASSWORD_FILE, a compose secret).
    if [ -z "${DJANGO_SUPERUSER_PASSWORD:-}" ] && [ -n "${DJANGO_SUPERUSER_PASSWORD_FILE:-}" ]; then
        DJANGO_SUPERUSER_PASSWORD=$(cat "$DJANGO_SUPERUSER_PASSWORD_FILE")
        export DJANGO_SUPERUSER_PASSWORD
    fi
    if [ -n "${DJANGO_SUPERUSER_USERNAME:-}" ] && [ -n "${DJANGO_SUPERUSER_PASSWORD:-}" ]; then
        python manage.py shell -c \
            "from registry.management.commands.serve import Command; Command()._ensure_superuser()"
    fi
}

case "$role" in
web | ws | worker | beat | serve)
    if [ "${QUAY_MIGRATE_AT_START:-0}" = 1 ]; then
        migrate
    fi
    ;;
esac

case "$role" in
web)
    exec python -m gunicorn quay_site.wsgi:application -c quay_site/gunicorn_conf.py "$@"
    ;;
ws)
    exec python -m daphne -b "${HOST:-0.0.0.0}" -p "${WS_PORT:-8787}" "$@" quay_site.asgi:application
    ;;
worker)
    exec python -m celery -A quay_site worker --loglevel="${LOG_LEVEL:-INFO}" --without-gossip --without-mingle "$@"
    ;;
beat)
    # The schedule file lives under DATA_DIR (CELERY_BEAT_SCHEDULE_FILENAME in settings.py).
    exec python -m celery -A quay_site beat --loglevel="${LOG_LEVEL:-INFO}" "$@"
    ;;
serve)
    exec python manage.py serve "$@"
    ;;
migrate)
    migrate
    ;;
manage)
    exec python manage.py "$@"
    ;;
roles)
    printf '%s\n' web ws worker beat serve migrate manage
    ;;
*)
    exec "$role" "$@"
    ;;
esac
