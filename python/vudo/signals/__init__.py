"""Signals: signed flood, gradient, directed, quorum and action-potential signals over the hyphal links.

Policies only (sans I/O): :class:`vudo.signals.network.SignalNetwork` is one
node's signal system; the envelope, dedup memory and each propagation mode
live in their own modules.
"""
