"""gunicorn's own logs (its error log and the access log) in the project's format, with the
request id and secret redaction (quay_site/logs.py); ``logger_class`` in gunicorn_conf.py."""

import os
import traceback

from gunicorn import glogging

from quay_site.logs import JsonFormatter, RedactFilter, RequestIdFilter, redact


class GunicornLogger(glogging.Logger):
    """gunicorn's logger with our filters on its handlers and, with LOG_FORMAT=json, JSON lines;
    a JSON access line also has the request's fields under ``http``."""

    def setup(self, cfg):
        super().setup(cfg)
        json_lines = os.environ.get("LOG_FORMAT", "text") == "json"
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.addFilter(RequestIdFilter())
                handler.addFilter(RedactFilter())
                if json_lines:
                    handler.setFormatter(JsonFormatter())

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        atoms = self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
        request_id = atoms["{x-request-id}o"]
        query = environ.get("QUERY_STRING")
        extra = {
            "request_id": "" if request_id == "-" else request_id,
            "http": {
                "method": atoms["m"],
                "path": redact(atoms["U"] + (f"?{query}" if query else "")),
                "status": atoms["s"],
                "bytes": atoms["B"],
                "duration_ms": atoms["M"],
                "remote_addr": atoms["h"],
                "user": atoms["u"],
                "user_agent": atoms["a"],
            },
        }
        try:
            self.access_log.info(self.cfg.access_log_format, atoms, extra=extra)
        except Exception:
            self.error(traceback.format_exc())
