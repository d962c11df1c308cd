"""Run the web server and a real Celery worker side by side; Ctrl-C stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start the web server and a Celery worker together (the embedded default)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--concurrency", default=os.environ.get("WORKER_CONCURRENCY", "2"))

    def handle(self, *args, host, port, concurrency, **options):
        python = sys.executable
        worker_cmd = [
            python,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"concord@{os.uname().nodename}",
            # One machine, one worker: it also runs the periodic schedule (celery beat),
            # whose reapers recover agreement runs and dataset builds after a killed worker.
            "--beat",
            "--schedule",
            str(settings.VAR_DIR / "celerybeat-schedule"),
        ]
        if not settings.REDIS_URL:
            # The filesystem broker has no fan-out for worker-to-worker chatter.
            worker_cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        if settings.DEBUG:
            web_cmd = [python, "manage.py", "runserver", f"{host}:{port}", "--noreload"]
        else:
            web_cmd = [
                python,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"{host}:{port}",
                "--workers",
                "3",
                # Threads, and a long timeout: dataset exports stream for minutes.
                "--worker-class",
                "gthread",
                "--threads",
                "4",
                "--timeout",
                "600",
            ]
        processes = {
            "worker": subprocess.Popen(worker_cmd, start_new_session=True),
            "web": subprocess.Popen(web_cmd, start_new_session=True),
        }
        broker = "Redis" if settings.REDIS_URL else "embedded filesystem broker"
        self.stdout.write(
            self.style.SUCCESS(
                f"\nConcord is starting at http://{host}:{port}/ "
                f"(web + Celery worker on the {broker}). Press Ctrl-C to stop both.\n"
            )
        )
        stopping = False

        def stop(signum=None, frame=None):
            nonlocal stopping
            if stopping:
                return
            stopping = True
            # Only the main processes: Celery then stops its pool itself (a warm shutdown
            # that finishes running tasks) instead of its children dying under it.
            for proc in processes.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        try:
            while not stopping:
                for name, proc in processes.items():
                    code = proc.poll()
                    if code is not None:
                        self.stderr.write(f"The {name} process exited with code {code}; stopping.")
                        exit_code = code or 1
                        stop()
                        break
                time.sleep(0.5)
        finally:
            stop()
            deadline = time.monotonic() + 20
            for proc in processes.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.stdout.write("Concord stopped.")
        if exit_code:
            sys.exit(exit_code)
