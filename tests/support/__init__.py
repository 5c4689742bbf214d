"""Shared test worlds: consortia, members and chains built on the fakes, used by several suites."""
