"""Services: one use case each, orchestrating pure decisions and ports (state, queues, Azure)."""
