"""Thin trigger handlers, one Blueprint module per capability.

A handler parses its binding into a command, calls a service from ``shared``, and passes platform
facts (dequeue count, past due) on as plain values. No decisions are made here.
"""
