"""How many CPU threads torch uses. Its default (one per core) stalls whenever anything else runs: on a
2-core laptop with one other busy process, a forward pass took 8x longer on 2 threads than on 1
(``python bench/threads.py``). The app and the command line therefore leave a core free."""
import os

import torch

ENV = "NEURONLAB_THREADS"


def default_threads() -> int:
    """``$NEURONLAB_THREADS`` if set, else half the CPUs (at least 1)."""
    value = os.environ.get(ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{ENV}={value!r}: give a whole number of threads, 1 or more")
        return int(value)
    return max(1, (os.cpu_count() or 2) // 2)


def use_default_threads() -> int:
    """Set torch's intra-op threads to ``default_threads()``; returns the number."""
    n = default_threads()
    torch.set_num_threads(n)
    return n
