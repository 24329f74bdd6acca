"""Built-in development vendors: memory, console and file."""
