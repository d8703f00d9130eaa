"""Substrate: the node's measured compute, storage and bandwidth."""
