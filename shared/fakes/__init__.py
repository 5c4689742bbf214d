"""In-memory fakes of the ports, for unit tests: tests assert on what a fake holds after the act."""
