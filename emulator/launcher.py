"""Launcher for the project's AWS emulator (moto 5.2.5 in server mode + fidelity patches).

Usage: python emulator/launcher.py [--host 127.0.0.1] [--port 0] [--verbose] [--no-stdin-watch]
                                   [--ecs-step-seconds 0.2] [--codedeploy-minute-seconds 1.0]

Process contract relied on by the Rust tests and scripts:
* prints exactly one line ``EMULATOR_READY http://127.0.0.1:<port>`` on stdout once
  the socket is listening (port 0 = any free port); everything else goes to stderr;
* exits cleanly on SIGTERM/SIGINT, and when stdin reaches EOF (the parent holds a
  pipe to our stdin; if the parent dies the pipe closes and we must not linger).
  ``--no-stdin-watch`` disables the latter for interactive use.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

# Allow `python emulator/launcher.py` from the repo root (package imports below).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from werkzeug.serving import make_server  # noqa: E402

from emulator import access, awslambda, cloudformation, codedeploy, ecs, ecs_deployments, iam, secretsmanager  # noqa: E402
from emulator.control import ControlMiddleware  # noqa: E402


def install_patches() -> None:
    """Apply all behaviour patches. Add new service modules here."""
    cloudformation.install()
    ecs.install()
    codedeploy.install()
    ecs_deployments.install()
    awslambda.install()
    iam.install()
    secretsmanager.install()
    access.install()


def build_app(verbose: bool = False) -> ControlMiddleware:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    install_patches()
    return ControlMiddleware(DomainDispatcherApplication(create_backend_app), verbose=verbose)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument("--no-stdin-watch", action="store_true", help="do not exit when stdin closes")
    parser.add_argument("--ecs-step-seconds", type=float, default=None,
                        help="ECS task/deployment step delay (default $EMULATOR_ECS_STEP_SECONDS or 0.2)")
    parser.add_argument("--codedeploy-minute-seconds", type=float, default=None,
                        help="seconds per deployment-config minute (default $EMULATOR_CODEDEPLOY_MINUTE_SECONDS or 1)")
    args = parser.parse_args(argv)
    if args.ecs_step_seconds is not None and args.ecs_step_seconds > 0:
        ecs.SETTINGS.step = args.ecs_step_seconds
    if args.codedeploy_minute_seconds is not None and args.codedeploy_minute_seconds > 0:
        codedeploy.SETTINGS.minute = args.codedeploy_minute_seconds

    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.verbose else logging.WARNING)
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # moto warns for every resource type it does not model; we handle those.
        logging.getLogger("moto").setLevel(logging.ERROR)
        import warnings

        warnings.filterwarnings("ignore")

    app = build_app(verbose=args.verbose)
    server = make_server(args.host, args.port, app, threaded=True)
    port = server.server_port
    # moto builds some URLs (e.g. SQS queue URLs) from MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)

    stopping = threading.Event()

    def stop(reason: str) -> None:
        if stopping.is_set():
            return
        stopping.set()
        if args.verbose:
            print(f"emulator: stopping ({reason})", file=sys.stderr, flush=True)
        # shutdown() blocks until serve_forever returns, so never call it on the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, lambda *_: stop("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: stop("SIGINT"))

    if not args.no_stdin_watch:
        def watch_stdin() -> None:
            try:
                while sys.stdin.buffer.read1(65536) if hasattr(sys.stdin.buffer, "read1") else sys.stdin.buffer.read(1):
                    pass
            except Exception:  # noqa: BLE001 - any stdin error means the parent is gone
                pass
            stop("stdin closed")

        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()

    host_shown = "127.0.0.1" if args.host in ("127.0.0.1", "0.0.0.0", "localhost") else args.host
    sys.stdout.write(f"EMULATOR_READY http://{host_shown}:{port}\n")
    sys.stdout.flush()

    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    # Worker threads are daemons; don't wait for in-flight stack operations.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
