"""Scripts that run on a node (sent as `python3 -` stdin); stdlib only, plus pynvml/torch where present."""
