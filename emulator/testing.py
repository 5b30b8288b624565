"""What the emulator's test modules share: an emulator process per module and
boto3 clients pointed at it (any region's fake credentials work; the suites use
us-east-1)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3

LAUNCHER = Path(__file__).resolve().parent / "launcher.py"
REGION = "us-east-1"


def spawn(*extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(LAUNCHER), "--port", "0", *extra], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def ready(proc: subprocess.Popen) -> tuple[subprocess.Popen, str]:
    line = proc.stdout.readline().strip()
    assert line.startswith("EMULATOR_READY http://127.0.0.1:"), line
    return proc, line.split(" ", 1)[1]


def start_emulator(*extra: str) -> tuple[subprocess.Popen, str]:
    return ready(spawn(*extra))


@contextmanager
def running_emulator(*extra: str) -> Iterator[str]:
    """An emulator for the block: its URL; closing its stdin ends it."""
    proc, url = start_emulator(*extra)
    try:
        yield url
    finally:
        proc.stdin.close()
        proc.wait(10)


def client(endpoint: str, service: str):
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")
