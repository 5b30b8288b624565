"""Process-wide shared state for the emulator (the lock guarding moto's backends)."""

import threading

# moto's in-memory backends are not thread-safe. Every AWS request (control.py)
# and every step of the asynchronous CloudFormation workers (cloudformation.py)
# runs while holding this lock; workers release it while they sleep.
LOCK = threading.RLock()
