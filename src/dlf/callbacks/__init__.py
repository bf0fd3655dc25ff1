"""Diagnostics as Lightning callbacks: figures go to TensorBoard and, as PNG, into the run dir."""
