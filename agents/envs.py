"""Environments that need memory, registered under the ``rlstm/`` Gymnasium namespace."""
