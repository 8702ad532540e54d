/* info.h - `oimap --info`: what each IMAP server says about itself. */
#ifndef OIMAP_INFO_H
#define OIMAP_INFO_H

#include <stdio.h>
#include <uv.h>

struct config;

/* Connect to every IMAP repository of the selected accounts (concurrently,
 * on loop), and print for each: host:port, TLS mode and session, the
 * greeting, capabilities before and after login, the hierarchy delimiter,
 * the namespace and the folder list.  Runs the loop until done.  Returns 0
 * when every repository answered, else a negative code (each failure is
 * printed with its repository). */
int info_run(uv_loop_t *loop, const struct config *cfg, FILE *out);

#endif
