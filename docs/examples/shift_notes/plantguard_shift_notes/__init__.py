"""Shift hand-over notes per line: the example capability (docs/adding-a-capability.md)."""
