"""The default training data, made from scratch: SVHN-like crops (entry point: synthetic.py)."""
