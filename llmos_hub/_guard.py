"""Loading one plugin without letting it take the host down.

:func:`guarded_load` wraps the import and the hook calls of one plugin:

* its stdout goes to stderr while it loads (``sys.stdout`` and file descriptor 1), so a plugin that
  prints at import never corrupts ``--json`` output;
* a plugin that is still loading after :data:`SLOW_ENV` seconds (default 10) is named on stderr with
  how to disable it, once: a hanging import is never a hang without a word;
* a ``KeyboardInterrupt`` that the *user* caused (SIGINT arriving while plugins load) is recorded by a
  temporary signal handler, so the host tells it from one that plugin code raised by itself: the
  first is re-raised (Ctrl-C still stops the command), the second is a plugin failure like any other.

:func:`plugin_call` does the same for plugin methods the plan calls (``capabilities()``,
``Task.load``): an exception that is not one of ours becomes one line naming the plugin.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .errors import LlmosHubError, PluginError

__all__ = ["SLOW_ENV", "guarded_load", "plugin_call"]

SLOW_ENV = "LLMOS_HUB_PLUGIN_SLOW_SECONDS"
T = TypeVar("T")


def _slow_after() -> float:
    try:
        return max(0.0, float(os.environ.get(SLOW_ENV, "10")))
    except ValueError:
        return 10.0


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Python-level and fd-level: what the plugin writes to stdout lands on stderr."""
    saved_fd = None
    try:
        sys.stdout.flush()
    except Exception:  # a closed or odd stdout: nothing to flush
        pass
    try:
        saved_fd = os.dup(1)
        os.dup2(2, 1)
    except OSError:
        saved_fd = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved_fd is not None:
            try:
                sys.stderr.flush()
            except Exception:
                pass
            os.dup2(saved_fd, 1)
            os.close(saved_fd)


@contextlib.contextmanager
def _watchdog(name: str, distribution: str) -> Iterator[None]:
    seconds = _slow_after()
    done = threading.Event()

    def warn() -> None:
        stream = sys.__stderr__
        if not done.is_set() and stream is not None:
            stream.write(
                f"warning: plugin {name} ({distribution}) is still loading after {seconds:g} s; if it hangs, "
                f"disable it with --disable-plugin {name} or LLMOS_HUB_DISABLE_PLUGINS={name}\n")
            stream.flush()

    timer = threading.Timer(seconds, warn)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        done.set()
        timer.cancel()


@contextlib.contextmanager
def _user_interrupts() -> Iterator[list[bool]]:
    """Record a real SIGINT while loading; the flag tells a user's Ctrl-C from a plugin's raise."""
    seen = [False]
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    try:
        previous = signal.getsignal(signal.SIGINT)
    except (ValueError, OSError):
        yield seen
        return

    def handler(signum: int, frame: Any) -> None:
        seen[0] = True
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGINT, handler)
    except (ValueError, OSError):
        yield seen
        return
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def guarded_load(name: str, distribution: str, *, builtin: bool = False) -> Iterator[None]:
    """Load one plugin: stdout kept off ours, slowness named, a user's Ctrl-C passed through."""
    with _user_interrupts() as interrupted:
        try:
            if builtin:
                yield
            else:
                with _watchdog(name, distribution), _stdout_to_stderr():
                    yield
        except KeyboardInterrupt:
            if interrupted[0]:
                raise _UserInterrupt from None
            raise


class _UserInterrupt(KeyboardInterrupt):
    """A Ctrl-C the user pressed while plugins loaded: never counted as a plugin failure."""


def plugin_call(host: Any, kind: str, name: str, what: str, fn: Callable[[], T]) -> T:
    """``fn()`` (a plugin's method), with a non-llmos-hub exception turned into one line naming the plugin."""
    try:
        return fn()
    except LlmosHubError:
        raise
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except (Exception, SystemExit) as exc:
        from ._registry import KINDS

        try:
            owner = host.registry.entry(kind, name).owner
        except Exception:  # not a plugin's (a task file's task): our own bug, shown as such
            raise exc from None
        text = " ".join(str(exc).split())[:300]
        detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        raise PluginError(
            f"plugin {owner.plugin} ({owner.distribution}): {what} of {KINDS[kind]} {name!r} raised {detail}; "
            f"report it to {owner.distribution} or disable it with --disable-plugin {owner.plugin}"
        ) from exc
