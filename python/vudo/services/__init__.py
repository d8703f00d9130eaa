"""Services: one per subsystem, each owning one engine handle and its policies.

A service has ``start`` / ``run`` / ``stop`` and a read-only ``view()``; the
node supervises them and the interfaces read their views.
"""
