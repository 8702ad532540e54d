/* cli.c - offlineimap(1)'s options, parsed with getopt_long.
 *
 * offlineimap uses Python's optparse: short options take their argument
 * attached or separate (-aWork, -a Work), long options take "=" or a
 * separate word.  getopt_long gives the same behaviour.
 */
#include "cli.h"
#include "err.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

enum {
    OPT_DRY_RUN = 256,
    OPT_INFO,
    OPT_VERSION,
    OPT_HELP,
    OPT_COLUMN,
    OPT_NO_COLUMN,
    OPT_DELETE_FOLDER,
    OPT_MIGRATE_FMD5,
    OPT_MBNAMES_PRUNE,
    OPT_IGNORE_KEYRING,
    OPT_UPDATE_KEYRING,
};

static const struct option long_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"info", no_argument, NULL, OPT_INFO},
    {"column", optional_argument, NULL, OPT_COLUMN},
    {"no-column", no_argument, NULL, OPT_NO_COLUMN},
    {"delete-folder", required_argument, NULL, OPT_DELETE_FOLDER},
    {"migrate-fmd5-using-nametrans", no_argument, NULL, OPT_MIGRATE_FMD5},
    {"mbnames-prune", no_argument, NULL, OPT_MBNAMES_PRUNE},
    {"ignore-keyring", no_argument, NULL, OPT_IGNORE_KEYRING},
    {"update-keyring", no_argument, NULL, OPT_UPDATE_KEYRING},
    {NULL, 0, NULL, 0},
};

void cli_usage(FILE *out)
{
    fputs("Usage: oimap [options]\n"
          "Two-way mail synchronisation between IMAP servers and local Maildirs,\n"
          "reading offlineimap's configuration file.\n"
          "\n"
          "  -c FILE            configuration file (default: $XDG_CONFIG_HOME/oimap/config,\n"
          "                     $XDG_CONFIG_HOME/offlineimap/config, ~/.offlineimaprc)\n"
          "  -a ACCT[,ACCT...]  sync only these accounts\n"
          "  -f FOLDER[,...]    sync only these (remote, untranslated) folders\n"
          "  -o                 sync once, ignoring autorefresh\n"
          "  -q                 quick sync: skip flag comparison where nothing changed\n"
          "  -k [SECTION:]OPTION=VALUE\n"
          "                     override a configuration option (repeatable; '_' in\n"
          "                     SECTION stands for a space; SECTION defaults to general)\n"
          "      --dry-run      show what would be done, change nothing anywhere\n"
          "      --info         show the accounts and servers as configured, then exit\n"
          "  -u UI              quiet, basic, ttyui, machineui or syslog\n"
          "  -s                 log to syslog too\n"
          "  -l FILE            also log to FILE\n"
          "  -d TYPE[,TYPE...]  debug output: imap, maildir, sync, status, thread, ALL\n"
          "                     (credentials are always masked)\n"
          "  -1                 one connection and one account at a time\n"
          "  -P DIR             profile mode (accepted; writes nothing to DIR)\n"
          "      --delete-folder FOLDER\n"
          "                     delete FOLDER on the remote repository\n"
          "      --mbnames-prune, --migrate-fmd5-using-nametrans,\n"
          "      --ignore-keyring, --update-keyring\n"
          "                     offlineimap's maintenance options\n"
          "      --column[=...], --no-column\n"
          "                     accepted for compatibility, no effect\n"
          "      --version      show the version\n"
          "  -V                 show the version and those of libuv, mbed TLS and LMDB\n"
          "  -h, --help         show this help\n"
          "\n"
          "Signals: USR1 sync now, USR2 finish and exit, TERM/INT/HUP stop cleanly.\n"
          "Exit status: 0 all synced, 1 some account or folder failed, 2 usage or\n"
          "configuration error.  See oimap(1) and oimap.conf(5).\n",
          out);
}

static int add_override(struct cli_opts *o, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
        fprintf(stderr, "oimap: -k %s: expected [SECTION:]OPTION=VALUE\n", arg);
        return OIMAP_EUSAGE;
    }
    const char *colon = memchr(arg, ':', (size_t)(eq - arg));
    const char *opt = colon ? colon + 1 : arg;
    if (opt == eq) {
        fprintf(stderr, "oimap: -k %s: the option name is empty\n", arg);
        return OIMAP_EUSAGE;
    }
    struct cli_override *n = realloc(o->overrides, (o->n_overrides + 1) * sizeof *n);
    if (!n)
        return -ENOMEM;
    o->overrides = n;
    struct cli_override *ov = &n[o->n_overrides];
    ov->section = colon ? strndup(arg, (size_t)(colon - arg)) : strdup("general");
    ov->option = strndup(opt, (size_t)(eq - opt));
    ov->value = strdup(eq + 1);
    if (!ov->section || !ov->option || !ov->value) {
        free(ov->section);
        free(ov->option);
        free(ov->value);
        return -ENOMEM;
    }
    o->n_overrides++;
    /* offlineimap: "Account_Work:autorefresh=5" names section "Account Work". */
    for (char *p = ov->section; *p; p++)
        if (*p == '_')
            *p = ' ';
    return 0;
}

int cli_parse(int argc, char **argv, struct cli_opts *o)
{
    int c, r;

    memset(o, 0, sizeof *o);
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":hV1P:a:c:d:l:f:k:oqu:s", long_opts, NULL)) != -1) {
        switch (c) {
        case 'h':
        case OPT_HELP:
            o->help = true;
            break;
        case 'V':
            o->version_full = true; /* offlineimap: with its libraries' versions */
            /* fall through */
        case OPT_VERSION:
            o->version = true;
            break;
        case '1':
            o->single = true;
            break;
        case 'P':
            o->profile_dir = optarg;
            break;
        case 'a':
            o->accounts = optarg;
            break;
        case 'c':
            o->config_file = optarg;
            break;
        case 'd':
            o->debug = optarg;
            if (log_cats_parse(optarg, &o->debug_cats) < 0) {
                fprintf(stderr,
                        "oimap: -d %s: unknown debug type (use imap, maildir, "
                        "sync, status, thread or ALL)\n",
                        optarg);
                goto usage;
            }
            break;
        case 'l':
            o->logfile = optarg;
            break;
        case 'f':
            o->folders = optarg;
            break;
        case 'k':
            if ((r = add_override(o, optarg)) < 0)
                goto fail;
            break;
        case 'o':
            o->once = true;
            break;
        case 'q':
            o->quick = true;
            break;
        case 'u': {
            enum log_ui ui;
            const char *note;
            if (log_ui_parse(optarg, &ui, &note) < 0) {
                fprintf(stderr,
                        "oimap: -u %s: unknown interface (use quiet, basic, ttyui, "
                        "machineui or syslog)\n",
                        optarg);
                goto usage;
            }
            o->ui = optarg;
            break;
        }
        case 's':
            o->syslog = true;
            break;
        case OPT_DRY_RUN:
            o->dry_run = true;
            break;
        case OPT_INFO:
            o->info = true;
            break;
        case OPT_COLUMN:
        case OPT_NO_COLUMN:
            break; /* accepted for compatibility */
        case OPT_DELETE_FOLDER:
            o->delete_folder = optarg;
            break;
        case OPT_MIGRATE_FMD5:
            o->migrate_fmd5 = true;
            break;
        case OPT_MBNAMES_PRUNE:
            o->mbnames_prune = true;
            break;
        case OPT_IGNORE_KEYRING:
            o->ignore_keyring = true;
            break;
        case OPT_UPDATE_KEYRING:
            o->update_keyring = true;
            break;
        case ':':
            if (optopt)
                fprintf(stderr, "oimap: option -%c needs a value (see oimap -h)\n", optopt);
            else
                fprintf(stderr, "oimap: option %s needs a value (see oimap -h)\n",
                        argv[optind - 1]);
            goto usage;
        default:
            if (optopt)
                fprintf(stderr, "oimap: unknown option -%c (see oimap -h)\n", optopt);
            else
                fprintf(stderr, "oimap: unknown option %s (see oimap -h)\n", argv[optind - 1]);
            goto usage;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "oimap: unexpected argument '%s' (see oimap -h)\n", argv[optind]);
        goto usage;
    }
    return 0;

usage:
    r = OIMAP_EUSAGE;
fail:
    cli_free(o);
    return r;
}

void cli_free(struct cli_opts *o)
{
    for (size_t i = 0; i < o->n_overrides; i++) {
        free(o->overrides[i].section);
        free(o->overrides[i].option);
        free(o->overrides[i].value);
    }
    free(o->overrides);
    o->overrides = NULL;
    o->n_overrides = 0;
}
