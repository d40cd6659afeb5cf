"""Inventory sync: one stock shared by the members of each sync group (ARCHITECTURE.md §5).

The pure core lives in :mod:`.state` (the group state and its JSON form), :mod:`.pool` (echo
matching, pool arithmetic, planning), :mod:`.orders` (orders as the stock source) and
:mod:`.outcome` (what an input meant). docs/inventory-sync.md states the rules and invariants.
"""
