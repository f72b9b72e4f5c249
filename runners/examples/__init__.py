"""Examples to copy from: the demo's sample handlers (`demo_handlers`)."""
