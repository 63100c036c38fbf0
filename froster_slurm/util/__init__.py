"""Small helpers both sides use: sizes and ages (``units``), bytes paths and folder lists
(``paths``), files only their owner can read (``private``).  Login node and job alike."""
