"""What every Snakemake ``script:`` job shares: logging to its log file, clean errors, and no
temporary file outliving the job."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from typing import Callable

from .atomic import remove_temporaries
from .errors import InputError

log = logging.getLogger("codi_sae")


class _WithoutTraceback(logging.Formatter):
    """For the terminal: the message only; the traceback goes to the log file."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None}))


def run_job(snakemake, main: Callable[[], object]) -> None:
    """Run ``main`` with logging to the rule's log and stderr, and exit 1 on any failure.

    First, the temporary files that a killed run of this job left beside its outputs are removed
    (Snakemake runs one job per output at a time). Bad input ends with its message; any other
    exception with a one-line cause on stderr and the full traceback in the log. SIGTERM (Slurm's
    time limit, ``scancel``, Snakemake stopping) ends the job at once: its temporary files are
    removed and Snakemake removes its outputs.
    """
    fmt = "%(asctime)s %(levelname)s %(message)s"
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setFormatter(_WithoutTraceback(fmt))
    handlers: list[logging.Handler] = [terminal]
    if snakemake.log:
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w"))
        handlers[-1].setFormatter(logging.Formatter(fmt))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    log.info("host %s, Slurm job %s, CUDA_VISIBLE_DEVICES=%s", socket.gethostname(),
             os.environ.get("SLURM_JOB_ID", "none"), os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
    outputs = list(snakemake.output)
    for path in outputs:
        for folder in remove_temporaries(path):
            log.info("removed %s, left by a killed run", folder)

    job_pid = os.getpid()

    def terminated(signum, frame) -> None:
        if os.getpid() != job_pid:  # a worker process forked from the job: only the job speaks
            os._exit(1)
        log.error("stopped by SIGTERM (a time limit, scancel, or snakemake stopping); nothing of this job is kept")
        for path in outputs:
            remove_temporaries(path)
        logging.shutdown()
        os._exit(1)  # at once: worker threads must not finish an output after this

    signal.signal(signal.SIGTERM, terminated)
    try:
        main()
    except InputError as e:
        log.error("%s", e)
        sys.exit(1)
    except Exception as e:  # a bug, CUDA out of memory, a full disk: the cause, and where in the log
        where = f" (traceback in {snakemake.log[0]})" if snakemake.log else ""
        log.error("%s: %s%s", type(e).__name__, e, where, exc_info=True)
        sys.exit(1)
