"""The command line starts OpenBLAS on one thread unless the user set a thread count; either way
every pass runs on one BLAS thread. Each case is a fresh interpreter: BLAS reads its thread
count once, when NumPy loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gradflow.engine.threads import THREAD_VARIABLES, numpy_blas_reads_openblas_variable

# Run the command, then report what BLAS was left with and what a pass runs on.
AFTER_A_RUN = """
import json, sys
sys.argv = ["gradflow", "analyze", "--depth", "2", "--width", "8", "--batch", "4", "-q"]
from gradflow.cli import main
try:
    main()
except SystemExit:
    pass
controller_loaded = "threadpoolctl" in sys.modules
from threadpoolctl import threadpool_info
from gradflow.engine.threads import one_blas_thread
blas = lambda: [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
print(json.dumps({"after": blas(), "in_pass": one_blas_thread(blas)(),
                  "controller_loaded": controller_loaded}))
"""

pytestmark = pytest.mark.skipif(
    not numpy_blas_reads_openblas_variable(), reason="NumPy's BLAS is not a pthreads OpenBLAS"
)


def _env(**threads: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    return env | threads


def _after_a_run(env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", AFTER_A_RUN], env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.splitlines()[-1]))


def test_unset_thread_count_starts_blas_on_one_thread_with_no_limit_to_take() -> None:
    assert _after_a_run(_env()) == {"after": [1], "in_pass": [1], "controller_loaded": False}


def test_a_users_thread_count_is_kept_and_each_pass_still_limited_to_one() -> None:
    got = _after_a_run(_env(OPENBLAS_NUM_THREADS="2"))
    assert got == {"after": [2], "in_pass": [1], "controller_loaded": True}


def test_numpy_already_loaded_leaves_the_environment_alone() -> None:
    probe = (
        "import os, numpy\nfrom gradflow.engine.threads import start_on_one_thread\n"
        "print(start_on_one_thread(), os.environ.get('OPENBLAS_NUM_THREADS'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=_env(), capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "None"]
