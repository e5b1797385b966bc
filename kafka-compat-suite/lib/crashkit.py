"""Broker processes that Python scenarios kill and restart themselves.

Scenarios 060-069 (durability) run with "# compat-broker: none" and need
what lib/broker.sh cannot give a Python process: a broker they can SIGKILL
at any moment and start again on the same data directory and the same port
(clients keep their bootstrap address and reconnect by themselves), many
times in a row. This module starts the broker exactly as broker.sh does
(base configuration, listeners/log.dirs/node.id overrides, COMPAT_OVERRIDES
so META=postgresql and STORAGE=s3 apply, ASAN_OPTIONS, working directory,
log appended to DIR/broker.log, wait until the port accepts connections).

Differences from broker.sh, on purpose:
 - the port is picked once per Broker and kept across restarts (the
   broker binds with SO_REUSEADDR, so TIME_WAIT sockets of its previous
   life do not stand in its way);
 - the binary is copied into the scenario directory first, so a rebuild of
   bin/ by someone else during a long scenario cannot swap the program
   under test half way (or make a restart fail while the linker writes).

The broker shares the scenario's process group, so run.sh's timeout (which
signals the group) takes it down too; Broker.cleanup() is also registered
with atexit.
"""

import atexit
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

LIB = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(LIB))


def broker_binary():
    b = os.environ.get("BROKER") or os.path.join(REPO, "bin", "streamhouse-server")
    return os.path.abspath(b)


def pick_port():
    """A random port of the compat range that we can bind right now."""
    lo = int(os.environ.get("COMPAT_PORT_MIN", "29000"))
    hi = int(os.environ.get("COMPAT_PORT_MAX", "29999"))
    ports = list(range(lo, hi + 1))
    random.SystemRandom().shuffle(ports)
    for p in ports:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        return p
    raise RuntimeError("no free port in %d-%d" % (lo, hi))


def port_accepts(port, timeout=1.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


class BrokerError(Exception):
    pass


class Broker:
    """One broker: a data directory, a fixed port, a process that comes and
    goes. start() / kill9() / stop() / restart9()."""

    _all = []

    def __init__(self, directory, settings=(), broker_id=7):
        self.dir = os.path.abspath(directory)
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "broker.log")
        self.settings = list(settings)
        self.broker_id = broker_id
        src = broker_binary()
        if not os.access(src, os.X_OK):
            raise BrokerError("broker binary %s is missing: run make (or set BROKER)" % src)
        self.bin = os.path.join(self.dir, "streamhouse-server")
        shutil.copy2(src, self.bin)
        cfg = os.environ.get("COMPAT_CONFIG") or os.path.join(REPO, "configs",
                                                              "server.properties")
        if not os.path.isfile(cfg):
            cfg = os.path.join(self.dir, "empty.properties")
            open(cfg, "a").close()
        self.config = os.path.abspath(cfg)
        self.port = pick_port()
        self.bootstrap = "127.0.0.1:%d" % self.port
        self.proc = None
        self.starts = 0
        self.kills = 0
        Broker._all.append(self)
        if len(Broker._all) == 1:
            atexit.register(Broker.cleanup_all)

    # ------------------------------------------------------------ lifecycle

    def args(self):
        a = [self.bin, self.config,
             "--override", "listeners=PLAINTEXT://127.0.0.1:%d" % self.port,
             "--override", "log.dirs=%s" % self.data,
             "--override", "node.id=%d" % self.broker_id]
        for kv in os.environ.get("COMPAT_OVERRIDES", "").split() + self.settings:
            a += ["--override", kv]
        return a

    def start(self, timeout=None):
        """Start and wait until the port accepts connections. The same port
        every time; a port still held by someone else is retried for a few
        seconds before giving up."""
        if self.proc is not None and self.proc.poll() is None:
            raise BrokerError("broker already running (pid %d)" % self.proc.pid)
        limit = timeout or float(os.environ.get("COMPAT_START_TIMEOUT", "30"))
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS",
                       "detect_leaks=%s" % os.environ.get("COMPAT_DETECT_LEAKS", "0"))
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        for attempt in range(20):
            with open(self.log, "a") as lf:
                lf.write("=== %s starting: %s\n" % (time.strftime("%F %T"),
                                                     " ".join(self.args())))
                lf.flush()
                self.proc = subprocess.Popen(self.args(), cwd=self.dir, env=env,
                                             stdin=subprocess.DEVNULL, stdout=lf,
                                             stderr=subprocess.STDOUT)
            t0 = time.time()
            while time.time() - t0 < limit:
                if self.proc.poll() is not None:
                    break
                if port_accepts(self.port, 0.5):
                    time.sleep(0.05)
                    if self.proc.poll() is None:
                        self.starts += 1
                        return time.time() - t0
                    break
                time.sleep(0.02)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                raise BrokerError("broker did not accept connections on %d within %.0f s"
                                  % (self.port, limit))
            if "in use" in self.log_tail(5).lower() and attempt < 19:
                time.sleep(0.5)     # our port, briefly held by someone else
                continue
            raise BrokerError("broker exited with status %s during startup:\n%s"
                              % (self.proc.returncode, self.log_tail(30)))
        raise BrokerError("port %d stayed in use" % self.port)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None and pid_alive(self.proc.pid)

    def kill9(self):
        """SIGKILL and reap. Returns False if it was already dead."""
        if not self.alive():
            return False
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.kills += 1
        return True

    def stop(self, grace=None):
        """SIGTERM, SIGKILL after the grace period. Returns the exit status
        (negative: the signal that ended it)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace or float(os.environ.get("COMPAT_STOP_TIMEOUT", "10")))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def restart9(self):
        """SIGKILL, then start again on the same directory and port.
        Returns the seconds the new process took to accept connections."""
        self.kill9()
        return self.start()

    def log_tail(self, n=40):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def dump_stacks(self):
        """Append every thread's stack (gdb) to DIR/stacks.txt: what a
        stuck broker was doing. Returns the path, or None without gdb."""
        if not self.alive() or not shutil.which("gdb"):
            return None
        path = os.path.join(self.dir, "stacks.txt")
        with open(path, "a") as f:
            f.write("=== %s pid %d\n" % (time.strftime("%F %T"), self.proc.pid))
            f.flush()
            subprocess.call(["gdb", "-p", str(self.proc.pid), "-batch", "-nx",
                             "-ex", "thread apply all bt"], stdin=subprocess.DEVNULL,
                            stdout=f, stderr=subprocess.STDOUT, timeout=60)
        return path

    @classmethod
    def cleanup_all(cls):
        for b in cls._all:
            if b.proc is not None and b.proc.poll() is None:
                b.proc.kill()
                b.proc.wait()


def fail(msg, *args):
    """Print the reason, keep the stacks of any broker still running (set
    COMPAT_STACKS=0 to skip), exit 1."""
    print("FAIL: " + (msg % args if args else msg), flush=True)
    if os.environ.get("COMPAT_STACKS", "1") != "0":
        for b in Broker._all:
            try:
                path = b.dump_stacks()
            except (OSError, subprocess.SubprocessError):
                path = None
            if path:
                print("broker stacks: %s" % path, flush=True)
    sys.exit(1)
