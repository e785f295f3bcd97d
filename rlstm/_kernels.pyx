# cython: language_level=3
"""Cython/BLAS kernels of rlstm.

Everything here is ``nogil`` and trusts its input: shapes, dtypes and contiguity are checked by
the Python layer (``rlstm/*.py``) before a kernel is called. Arrays are row-major (C order);
they go to the Fortran BLAS of ``scipy.linalg.cython_blas`` by swapping operands, never by copying
(the scheme of scikit-learn's ``sklearn/utils/_cython_blas.pyx``).

Gate order is i, f, g, o, as in PyTorch. Kernels never allocate per time step.

The file is split by topic with ``include``: the shared BLAS and activation helpers come first,
then one ``.pxi`` per layer family.
"""
include "_blas.pxi"
include "_lstm.pxi"
include "_step.pxi"
include "_gru.pxi"
include "_ctc.pxi"
include "_convlstm.pxi"
include "_conv.pxi"
include "_population.pxi"
include "_optim.pxi"
include "_config.pxi"
