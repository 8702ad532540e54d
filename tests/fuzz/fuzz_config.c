/* fuzz_config.c - libFuzzer target for the configuration reader.
 *
 * Feeds arbitrary bytes to config_load_buffer() (inih with our line reader,
 * interpolation, typing and validation); when a config comes out, exercises
 * config_raw() and config_print_info() on it as well.
 *
 *   clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude \
 *       tests/fuzz/fuzz_config.c src/config.c src/config_ini.c src/log.c src/err.c \
 *       -linih -o fuzz_config
 *   ./fuzz_config -max_total_time=60 corpus/
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (!devnull) {
        devnull = fopen("/dev/null", "w");
        log_init(LOG_UI_QUIET, NULL, 0);
    }
    /* One fixed override so the -k path is exercised too. */
    static const struct config_override ov = {"general", "dry-run", "yes"};
    struct config *cfg = NULL;
    if (config_load_buffer("fuzz.conf", (const char *)data, size, &ov, 1, &cfg) == 0) {
        for (size_t i = 0; i < cfg->n_accounts; i++)
            (void)config_raw(cfg, cfg->accounts[i].section, "localrepository", NULL);
        (void)config_raw(cfg, "general", "accounts", NULL);
        if (devnull)
            config_print_info(cfg, devnull);
    }
    config_free(&cfg);
    return 0;
}
