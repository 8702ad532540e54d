/* main.c - oimap's entry point: command line, configuration, then the job.
 *
 * Exit status (as documented in oimap(1)): 0 when every selected account
 * synced without error, 1 when some account or folder failed, 2 for usage
 * and configuration errors (nothing has been touched then).
 */
#include "build_config.h"
#include "account.h"
#include "aftersync.h"
#include "cli.h"
#include "config.h"
#include "delfolder.h"
#include "err.h"
#include "fmd5_migrate.h"
#include "info.h"
#include "log.h"
#include "scheduler.h"

#include <errno.h>
#include <lmdb.h>
#include <mbedtls/version.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_SYNC_FAILED 1
#define EXIT_USAGE 2

/* Turn the command line into configuration overrides, the way offlineimap
 * does it (init.py): -k first, then -a, --dry-run, -o, -q and -f rewrite
 * options of the file. */
static int build_overrides(const struct cli_opts *o, struct config_override **ov_r, size_t *n_r)
{
    size_t cap = o->n_overrides + 4;
    struct config_override *ov = calloc(cap, sizeof *ov);
    size_t n = 0;

    if (!ov)
        return -ENOMEM;
    for (size_t i = 0; i < o->n_overrides; i++)
        ov[n++] = (struct config_override){o->overrides[i].section, o->overrides[i].option,
                                           o->overrides[i].value};
    if (o->accounts)
        ov[n++] = (struct config_override){"general", "accounts", o->accounts};
    if (o->dry_run)
        ov[n++] = (struct config_override){"general", "dry-run", "yes"};
    *ov_r = ov;
    *n_r = n;
    return 0;
}

static enum log_ui pick_ui(const struct cli_opts *o, const struct config *cfg)
{
    enum log_ui ui = LOG_UI_TTY;
    const char *note = NULL;

    if (o->ui) {
        log_ui_parse(o->ui, &ui, &note); /* validated by cli_parse */
    } else if (cfg && cfg->general.ui) {
        /* [general] ui may list several; the first usable one wins. */
        char *list = strdup(cfg->general.ui), *save = NULL;
        bool found = false;
        for (char *t = list ? strtok_r(list, ", ", &save) : NULL; t && !found;
             t = strtok_r(NULL, ", ", &save))
            found = log_ui_parse(t, &ui, &note) == 0;
        if (!found)
            log_warn("%s: [general] ui: no known interface in '%s', using ttyui", cfg->path,
                     cfg->general.ui);
        free(list);
    }
    if (note)
        log_info("%s", note);
    return ui;
}

/* -V: offlineimap prints its version with those of what it runs on. */
static void print_version_full(void)
{
    char tls[32] = "";
#if defined(MBEDTLS_VERSION_C)
    mbedtls_version_get_string(tls);
#else
    snprintf(tls, sizeof tls, "%s", MBEDTLS_VERSION_STRING);
#endif
    int maj = 0, min = 0, patch = 0;
    mdb_version(&maj, &min, &patch);
    printf("oimap %s, libuv %s, mbed TLS %s, LMDB %d.%d.%d\n", OIMAP_VERSION, uv_version_string(),
           tls, maj, min, patch);
}

int main(int argc, char **argv)
{
    struct cli_opts opts;
    struct config *cfg = NULL;
    struct config_override *ov = NULL;
    size_t n_ov = 0;
    char *path = NULL;
    int r, status = EXIT_USAGE;

    /* A server closing while we write must be an error code, not a kill. */
    signal(SIGPIPE, SIG_IGN);
    if (cli_parse(argc, argv, &opts) < 0)
        return EXIT_USAGE;
    if (opts.help) {
        cli_usage(stdout);
        status = 0;
        goto out;
    }
    if (opts.version) {
        if (opts.version_full)
            print_version_full();
        else
            printf("oimap %s\n", OIMAP_VERSION);
        status = 0;
        goto out;
    }

    /* Until the configuration is read, errors go to stderr in basic form. */
    log_init(LOG_UI_BASIC, NULL, opts.debug_cats);
    if (opts.logfile && (r = log_init(LOG_UI_BASIC, opts.logfile, opts.debug_cats)) < 0) {
        fprintf(stderr, "oimap: -l %s: %s\n", opts.logfile, err_str(r));
        goto out;
    }

    path = opts.config_file ? strdup(opts.config_file) : config_default_path();
    if (!path || build_overrides(&opts, &ov, &n_ov) < 0) {
        fprintf(stderr, "oimap: out of memory\n");
        goto out;
    }
    r = config_load(path, ov, n_ov, &cfg);
    if (r < 0)
        goto out; /* config_load named file, line and option */

    log_init(opts.info ? LOG_UI_BASIC : pick_ui(&opts, cfg), NULL, opts.debug_cats);
    /* -s: syslog besides the interface, as offlineimap adds a handler. */
    if (opts.syslog)
        log_also_syslog(true);

    /* Maildir durability runs as concurrent fsyncs in the threadpool; libuv's
     * default of 4 threads caps that concurrency (the user's setting wins). */
    setenv("UV_THREADPOOL_SIZE", "16", 0);
    uv_loop_t *loop = uv_default_loop();
    if (opts.info) {
        config_print_info(cfg, stdout);
        fflush(stdout);
        status = info_run(loop, cfg, stdout) < 0 ? EXIT_SYNC_FAILED : 0;
        goto out;
    }

    bool dry_run = opts.dry_run || cfg->general.dry_run;
    if (opts.mbnames_prune) {
        r = aftersync_mbnames_prune(cfg, dry_run);
        status = r == 0 ? 0 : r == OIMAP_ECONFIG ? EXIT_USAGE : EXIT_SYNC_FAILED;
        goto out;
    }
    if (opts.migrate_fmd5) {
        r = fmd5_migrate_run(loop, cfg, dry_run);
        status = r == 0 ? 0 : r == OIMAP_ECONFIG ? EXIT_USAGE : EXIT_SYNC_FAILED;
        goto out;
    }
    if (opts.delete_folder) {
        r = delfolder_run(loop, cfg, opts.delete_folder, dry_run);
        status = r == 0                                    ? 0
                 : r == OIMAP_ECONFIG || r == OIMAP_EUSAGE ? EXIT_USAGE
                                                           : EXIT_SYNC_FAILED;
        goto out;
    }
    if (aftersync_check_config(cfg) < 0) {
        status = EXIT_USAGE;
        goto out;
    }

    struct account_run_opts ro = {
        .dry_run = dry_run,
        .quick = opts.quick,
        .single = opts.single || opts.profile_dir != NULL,
        .folders = opts.folders,
    };
    /* Without -o, accounts with autorefresh or idlefolders keep oimap running
     * (offlineimap's behaviour); everything else is one sync. */
    if (!opts.once && sched_wanted(cfg))
        r = sched_run(loop, cfg, &ro);
    else
        r = account_run_all(loop, cfg, &ro);
    status = r == 0 ? 0 : r == OIMAP_ECONFIG ? EXIT_USAGE : EXIT_SYNC_FAILED;
    /* [mbnames] with incremental = no: once every account is done. */
    if (aftersync_finish(cfg, dry_run) < 0 && status == 0)
        status = EXIT_SYNC_FAILED;

out:
    uv_loop_close(uv_default_loop());
    config_free(&cfg);
    free(ov);
    free(path);
    cli_free(&opts);
    log_close();
    return status;
}
