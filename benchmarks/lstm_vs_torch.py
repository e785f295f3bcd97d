"""rlstm vs torch 2.13.0 and NumPy's sgemm: LSTM training, the rollout step, the large forward,
the conv encoder; and rlstm builds against each other (portable vs native).

Install the comparison with ``pip install -e ".[bench]"`` (CPU torch 2.13.0), then:

    python benchmarks/lstm_vs_torch.py --threads 1,2
    # the portable build (this checkout) against a native one built elsewhere with
    # RLSTM_NATIVE=1 python setup.py build_ext --inplace:
    python benchmarks/lstm_vs_torch.py --threads 1 --builds portable=.,native=../rlstm-native

It prints Markdown tables (medians of alternating runs, same thread count, same process; with
--builds every build's package is imported side by side and the builds alternate). The
measuring code lives in ``rlstm.benchmark``
so ``rlstm bench`` runs the same.
"""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout

from rlstm.benchmark import main  # noqa: E402

if __name__ == "__main__":
    main()
