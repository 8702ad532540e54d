/* info.c - placeholder */
