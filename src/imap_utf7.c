/* imap_utf7.c - placeholder, filled in by its module's work. */
