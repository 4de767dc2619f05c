"""screenpop: placeholder package of the client's layout; filled by its own issue."""
