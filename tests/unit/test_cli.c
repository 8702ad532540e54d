/* test_cli.c - offlineimap's command line, parsed as offlineimap parses it. */
#include "cli.h"
#include "err.h"
#include "log.h"
#include "tap.h"

#include <stdio.h>
#include <string.h>

static int parse(struct cli_opts *o, int argc, const char **argv)
{
    /* getopt permutes argv: give it a writable copy. */
    char *copy[32];
    for (int i = 0; i < argc; i++)
        copy[i] = (char *)argv[i];
    copy[argc] = NULL;
    return cli_parse(argc, copy, o);
}

int main(void)
{
    struct cli_opts o;
    FILE *devnull = freopen("/dev/null", "w", stderr);
    (void)devnull;

    {
        const char *a[] = {"oimap", "-o", "-q", "-1", "--dry-run", "--info", "-s"};
        is_int(parse(&o, 7, a), 0, "flags parse");
        ok(o.once && o.quick && o.single && o.dry_run && o.info && o.syslog, "all flags set");
        ok(!o.help && !o.version, "help and version not set");
        cli_free(&o);
    }
    {
        const char *a[] = {"oimap", "-aWork,Home", "-c", "/tmp/rc",   "-f", "INBOX,Sent",
                           "-l",    "/tmp/log",    "-u", "machineui", "-P", "/tmp/prof"};
        is_int(parse(&o, 12, a), 0, "valued options parse");
        is_str(o.accounts, "Work,Home", "-a attached value");
        is_str(o.config_file, "/tmp/rc", "-c");
        is_str(o.folders, "INBOX,Sent", "-f");
        is_str(o.logfile, "/tmp/log", "-l");
        is_str(o.ui, "machineui", "-u");
        is_str(o.profile_dir, "/tmp/prof", "-P");
        cli_free(&o);
    }
    {
        const char *a[] = {"oimap",    "-k", "Account_My_Work:autorefresh=5", "-k",
                           "ui=quiet", "-k", "Repository_R:remotepass=a=b;c"};
        is_int(parse(&o, 7, a), 0, "-k parses");
        is_int(o.n_overrides, 3, "three overrides");
        is_str(o.overrides[0].section, "Account My Work", "underscores become spaces");
        is_str(o.overrides[0].option, "autorefresh", "option name");
        is_str(o.overrides[0].value, "5", "value");
        is_str(o.overrides[1].section, "general", "section defaults to general");
        is_str(o.overrides[2].value, "a=b;c", "value keeps everything after the first =");
        is_str(o.overrides[2].option, "remotepass", "option before first =");
        cli_free(&o);
        is_int(o.n_overrides, 0, "cli_free resets");
    }
    {
        const char *a[] = {"oimap", "-d", "imap,maildir"};
        is_int(parse(&o, 3, a), 0, "-d list");
        is_int(o.debug_cats, LOGC_IMAP | LOGC_MAILDIR, "-d bits");
        cli_free(&o);
        const char *b[] = {"oimap", "-d", "ALL"};
        is_int(parse(&o, 3, b), 0, "-d ALL");
        is_int(o.debug_cats, LOGC_ALL, "-d ALL bits");
        cli_free(&o);
        const char *c[] = {"oimap", "-d", "thread"};
        is_int(parse(&o, 3, c), 0, "-d thread accepted");
        cli_free(&o);
    }
    {
        const char *a[] = {"oimap", "--column", "--column=2", "--no-column", "-V"};
        is_int(parse(&o, 5, a), 0, "--column variants accepted");
        ok(o.version, "-V is --version");
        cli_free(&o);
        const char *b[] = {"oimap", "--delete-folder", "Old", "--mbnames-prune",
                           "--migrate-fmd5-using-nametrans"};
        is_int(parse(&o, 5, b), 0, "maintenance options");
        is_str(o.delete_folder, "Old", "--delete-folder value");
        ok(o.mbnames_prune && o.migrate_fmd5, "maintenance flags");
        cli_free(&o);
    }
    {
        const char *bad1[] = {"oimap", "--frobnicate"};
        is_int(parse(&o, 2, bad1), OIMAP_EUSAGE, "unknown long option");
        const char *bad2[] = {"oimap", "-z"};
        is_int(parse(&o, 2, bad2), OIMAP_EUSAGE, "unknown short option");
        const char *bad3[] = {"oimap", "-c"};
        is_int(parse(&o, 2, bad3), OIMAP_EUSAGE, "missing value");
        const char *bad4[] = {"oimap", "-u", "fancy"};
        is_int(parse(&o, 3, bad4), OIMAP_EUSAGE, "unknown UI");
        const char *bad5[] = {"oimap", "-d", "imap,bogus"};
        is_int(parse(&o, 3, bad5), OIMAP_EUSAGE, "unknown debug type");
        const char *bad6[] = {"oimap", "-k", "novalue"};
        is_int(parse(&o, 3, bad6), OIMAP_EUSAGE, "-k without =");
        const char *bad7[] = {"oimap", "-k", "sec:=v"};
        is_int(parse(&o, 3, bad7), OIMAP_EUSAGE, "-k with empty option");
        const char *bad8[] = {"oimap", "stray"};
        is_int(parse(&o, 2, bad8), OIMAP_EUSAGE, "stray argument");
    }
    return tap_done();
}
