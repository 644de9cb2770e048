"""What every Snakemake ``script:`` job shares: logging to its log file, clean errors."""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Callable

from .errors import InputError

log = logging.getLogger("codi_sae")


def run_job(snakemake, main: Callable[[], object]) -> None:
    """Run ``main`` with logging to the rule's log and stderr; bad input exits 1 with its message."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if snakemake.log:
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)
    log.info("host %s, Slurm job %s, CUDA_VISIBLE_DEVICES=%s", socket.gethostname(),
             os.environ.get("SLURM_JOB_ID", "none"), os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
    try:
        main()
    except InputError as e:
        log.error("%s", e)
        sys.exit(1)
