"""The Python peer of gild's trigger and bake-finished functions, for `make bench`.

Same AWS calls, in the same order, as the Rust functions on their happy path;
see README.md beside this package.
"""
