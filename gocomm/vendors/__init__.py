"""Built-in development vendors: memory, console and file (registered by
:mod:`gocomm.vendors.builtin`)."""
