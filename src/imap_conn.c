/* imap_conn.c - placeholder, filled in by its module's work. */
