"""Pure-NumPy reference implementations of every rlstm kernel.

They are slow and simple on purpose: the tests compare each Cython/BLAS kernel with its reference
in both dtypes, and users can read them as the specification of what a kernel computes. Each
topic has its own module (``rlstm.reference.lstm``, ``rlstm.reference.gru``, ...).
"""
