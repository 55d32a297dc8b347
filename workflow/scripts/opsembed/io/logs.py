"""Logging set-up shared by the rule scripts."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator


@contextlib.contextmanager
def script_logging(log_path: str | None) -> Iterator[logging.Logger]:
    """Send logging, stdout and stderr (progress bars included) to ``log_path``.

    Exceptions are logged with their traceback, then re-raised so the job fails.
    With ``log_path=None`` everything stays on the terminal.
    """
    logger = logging.getLogger("opsembed")
    if log_path is None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        yield logger
        return
    with open(log_path, "w", buffering=1) as handle:
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = handle
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield logger
        except BaseException:
            logger.exception("job failed")
            raise
        finally:
            root.removeHandler(handler)
            sys.stdout, sys.stderr = old_out, old_err


def terminal_warning(message: str, logger: logging.Logger | None = None) -> None:
    """Log ``message`` as a WARNING (on ``logger``, default ``opsembed``) and, inside a rule
    script (whose stderr ``script_logging`` sends to the job log), also print it on the
    terminal's stderr, where Snakemake's own output goes."""
    (logger or logging.getLogger("opsembed")).warning(message)
    if sys.__stderr__ is not None and sys.stderr is not sys.__stderr__:
        print(f"opsembed: WARNING: {message}", file=sys.__stderr__, flush=True)
