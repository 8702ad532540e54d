/* repo_maildir.c - placeholder, filled in by its module's work. */
