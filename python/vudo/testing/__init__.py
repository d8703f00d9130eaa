"""Test support shipped with the package: in-memory networks and simulations."""
