"""What run.sh tells a Python scenario about the broker it started, and
checks every scenario wants at its end.

Import with:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
    import compat
"""

import os
import re
import sys

HOST = os.environ.get("BROKER_HOST", "127.0.0.1")
PORT = int(os.environ.get("BROKER_PORT", "0"))
BOOTSTRAP = os.environ.get("BOOTSTRAP", "%s:%d" % (HOST, PORT))
BROKER_ID = int(os.environ.get("BROKER_ID", "-1"))
BROKER_PID = int(os.environ.get("BROKER_PID", "0"))
BROKER_LOG = os.environ.get("BROKER_LOG", "")
SCENARIO_TMP = os.environ.get("SCENARIO_TMP", "")

if not PORT or not BROKER_PID:
    sys.exit("run this through kafka-compat-suite/run.sh: BROKER_PORT/BROKER_PID are not set")

# What ASan, UBSan, LeakSanitizer and glibc print when something is wrong.
SANITIZER_RE = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"SUMMARY: (Address|Undefined|Leak)Sanitizer|\*\*\* stack smashing|"
    r"double free or corruption|malloc\(\): ")


def broker_alive():
    """True while the broker process exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % BROKER_PID) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def sanitizer_reports():
    """Lines of the broker log that look like a sanitizer or libc report."""
    if not BROKER_LOG or not os.path.exists(BROKER_LOG):
        return []
    with open(BROKER_LOG, errors="replace") as f:
        return [line.rstrip() for line in f if SANITIZER_RE.search(line)]


def check(cond, msg, *args):
    if not cond:
        raise AssertionError(msg % args if args else msg)


def log(msg, *args):
    print(msg % args if args else msg, flush=True)
