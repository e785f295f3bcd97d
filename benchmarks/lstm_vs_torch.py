"""rlstm.LSTM vs torch.nn.LSTM / nn.LSTMCell: training step, single-step inference, large shape.

Install the comparison with ``pip install -e ".[bench]"`` (CPU torch 2.13.0), then:

    python benchmarks/lstm_vs_torch.py --threads 2

It prints a Markdown table (median of several runs, same thread count, same process) that the
README quotes. The measuring code lives in ``rlstm.benchmark`` so ``rlstm bench`` runs the same.
"""
from rlstm.benchmark import main

if __name__ == "__main__":
    main()
