"""Hyphal topology: identities, signed announcements, membership, bootstrap."""
