"""The scheduling core: pure, synchronous and deterministic.

Every method takes the current time ``now`` (seconds, any epoch) explicitly and returns
the decisions it made as :mod:`actions <kvbaton.middleware.core.actions>`. The live proxy
and the discrete-event simulator are two drivers of this same code.
"""
