"""Erasure: forgetting a person everywhere, keeping only a hashed tombstone."""
