/* cli.h - offlineimap(1)'s command line.
 *
 * cli_parse() reads argv into a struct cli_opts.  Strings point into argv
 * (which outlives the program's use of them) except the -k overrides, whose
 * parts are split into heap copies owned by the struct: cli_free() releases
 * them.  Errors are one line on stderr ("oimap: ..."), and the caller exits
 * with status 2.
 */
#ifndef OIMAP_CLI_H
#define OIMAP_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* One -k [SECTION:]OPTION=VALUE.  section has '_' turned into ' ', and is
 * "general" when omitted. */
struct cli_override {
    char *section;
    char *option;
    char *value;
};

struct cli_opts {
    bool help, version, dry_run, info, single, once, quick, syslog;
    bool version_full; /* -V: the version and those of the libraries */
    bool migrate_fmd5, mbnames_prune, ignore_keyring, update_keyring;
    const char *profile_dir;        /* -P */
    const char *accounts;           /* -a a,b */
    const char *config_file;        /* -c */
    const char *debug;              /* -d */
    unsigned debug_cats;            /* -d parsed (LOGC_* bits) */
    const char *logfile;            /* -l */
    const char *folders;            /* -f a,b */
    const char *ui;                 /* -u */
    const char *delete_folder;      /* --delete-folder */
    struct cli_override *overrides; /* -k, in order given */
    size_t n_overrides;
};

/* Returns 0, or OIMAP_EUSAGE after printing a one-line error. */
int cli_parse(int argc, char **argv, struct cli_opts *opts_r);
void cli_free(struct cli_opts *opts);

/* The -h summary. */
void cli_usage(FILE *out);

#endif
